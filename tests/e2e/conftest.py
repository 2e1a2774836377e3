"""The embedded runtime end to end: real Postgres, real Qdrant-edge index, real PII redaction; the
embedding model is the deterministic hashing backend unless a test needs the real one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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
