"""Jars fetched once into a cache folder by Maven, from the pinned poms in `infra/` (no tarballs, no Docker).

A `.complete` marker is written last, so a download cut short is redone instead of leaving a launcher
with half a classpath.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from headwater.stack.process import run_tool

__all__ = ["INFRA", "fetch_with_maven", "fetched"]

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPLETE = ".complete"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


def fetched(target: Path) -> bool:
    """Whether a fetch into `target` finished."""
    return (target / COMPLETE).exists()


def fetch_with_maven(
    pom_dir: Path,
    target: Path,
    *,
    properties: Mapping[str, str] | None = None,
    runtime_only: bool = False,
) -> Path:
    """Copy the dependencies of `pom_dir/pom.xml` (with `properties` set) into `target`, unless done."""
    if fetched(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    argv = [
        "mvn",  # looked up on PATH like any developer tool
        "-B",
        "-q",
        *(f"-D{name}={value}" for name, value in (properties or {}).items()),
        _DEPENDENCY_PLUGIN,
        f"-DoutputDirectory={target}",
    ]
    if runtime_only:  # a plugin folder leaves out what its host provides (`provided` scope)
        argv.append("-DincludeScope=runtime")
    run_tool(argv, what=f"mvn copy-dependencies in {pom_dir}", cwd=pom_dir)
    (target / COMPLETE).write_text("".join(f"{name}={value}\n" for name, value in (properties or {}).items()))
    return target
