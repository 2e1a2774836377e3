"""Topic names and which contract each carries. A breaking change is a new model and a new `.vN` topic."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from schemas.chunks import ChunksCreated, ChunksEmbedded, ChunksEnriched
from schemas.dead_letters import DeadLetter
from schemas.documents import DocumentChanged, DocumentRedacted


@dataclass(frozen=True)
class Topic:
    name: str
    model: type[BaseModel]
    compacted: bool  # compacted by document key, so a replay rebuilds current state
    producer: str
    consumer: str | None


DOCUMENTS = Topic("headwater.documents.v1", DocumentChanged, True, "ingest", "ingest")
DOCUMENTS_REDACTED = Topic("headwater.documents.redacted.v1", DocumentRedacted, True, "ingest", "chunker")
CHUNKS = Topic("headwater.chunks.v1", ChunksCreated, True, "chunker", "embedder")
CHUNKS_EMBEDDED = Topic("headwater.chunks.embedded.v1", ChunksEmbedded, True, "embedder", "graph_builder")
CHUNKS_ENRICHED = Topic("headwater.chunks.enriched.v1", ChunksEnriched, True, "graph_builder", "indexer")

PIPELINE: tuple[Topic, ...] = (DOCUMENTS, DOCUMENTS_REDACTED, CHUNKS, CHUNKS_EMBEDDED, CHUNKS_ENRICHED)
STAGES: tuple[str, ...] = ("ingest", "chunker", "embedder", "graph_builder", "indexer")
# Consumers that read a source connector's topics rather than a pipeline topic (the ingest service's CDC).
CDC_STAGE = "cdc"
SOURCE_STAGES: tuple[str, ...] = (CDC_STAGE,)


def dead_letter_topic(stage: str) -> Topic:
    """Each stage has its own dead-letter topic, kept by retention rather than compaction."""
    if stage not in STAGES and stage not in SOURCE_STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return Topic(f"headwater.dlq.{stage}.v1", DeadLetter, False, stage, None)
