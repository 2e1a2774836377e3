"""The stage handlers one process runs, each built once by its runtime's composition root. The handlers
themselves live with their stages (`services/<stage>/handlers.py`); both runtimes call exactly these
objects, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from services.embedder.errors import TransientEmbeddingError

if TYPE_CHECKING:
    from services.chunker.handlers import ChunkStage
    from services.embedder.handlers import EmbedStage
    from services.graph_builder.handlers import EnrichStage
    from services.indexer.handlers import IndexStage
    from services.ingest.handlers import RedactStage  # Presidio, spaCy, torch (~750 MiB): ingest only

# Errors worth retrying: the message is fine, something it depends on is briefly unavailable.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientEmbeddingError,
    psycopg.OperationalError,
    TimeoutError,
    ConnectionError,
)

Handler = Callable[[list[Any]], Sequence[Any]]


@dataclass(frozen=True)
class StageHandlers:
    """One handler per stage this process runs; a stage process holds only its own."""

    redact: RedactStage | None = None
    chunk: ChunkStage | None = None
    embed: EmbedStage | None = None
    enrich: EnrichStage | None = None
    index: IndexStage | None = None

    def for_stage(self, stage: str) -> Handler:
        handlers: dict[str, Handler | None] = {
            "ingest": self.redact,
            "chunker": self.chunk,
            "embedder": self.embed,
            "graph_builder": self.enrich,
            "indexer": self.index,
        }
        handler = handlers[stage]
        if handler is None:  # a wiring bug: this process was not built for that stage
            raise RuntimeError(f"this process has no handler for stage {stage!r}")
        return handler
