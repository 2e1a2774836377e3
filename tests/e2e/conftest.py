"""The embedded runtime end to end: real Postgres, real Qdrant-edge index, real PII redaction; the
embedding model is the deterministic hashing backend unless a test needs the real one."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from headwater.config import HeadwaterSettings
from headwater.runtime.embedded import EmbeddedHeadwater, build
from services.embedder.adapters.fake import HashingBackend
from services.embedder.config import EmbedderSettings
from services.embedder.ports import EmbeddingBackend

RuntimeFactory = Callable[..., EmbeddedHeadwater]


@pytest.fixture
def make_runtime(postgres_url: str, tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Build runtimes over one state directory and one Postgres schema, so a test can restart them."""
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    started: list[EmbeddedHeadwater] = []

    def factory(
        *, backend: EmbeddingBackend | None = None, start: bool = True, **overrides: object
    ) -> EmbeddedHeadwater:
        settings = HeadwaterSettings(
            home=tmp_path / "home",
            database_url=postgres_url,
            database_schema=schema,
            environment="test",
            **overrides,
        )  # type: ignore[arg-type]
        runtime = EmbeddedHeadwater(
            build(settings, backend=backend or HashingBackend(), embedder=EmbedderSettings(backend="hashing"))
        )
        if start:
            runtime.start()
            started.append(runtime)
        return runtime

    yield factory
    for runtime in started:
        if runtime.workers[0].is_alive():
            runtime.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_embedded(home: Path, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """`headwater serve` in its own process, returned once `/readyz` answers 200."""
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", "serve", "--home", str(home), "--port", str(port)],
        env=dict(env),
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become ready")
