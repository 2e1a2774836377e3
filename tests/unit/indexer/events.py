"""Builders of `ChunksEnriched` events for indexer tests."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

from schemas import (
    ChangeOp,
    Chunk,
    ChunkEntities,
    ChunksEnriched,
    ChunkVectors,
    SourceKind,
    SourceRef,
    SparseVector,
)

DIM = 8
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def vector_for(text: str) -> list[float]:
    """A deterministic unit vector derived from the text."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b - 127.5 for b in digest[:DIM]]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def make_event(
    *,
    version: int,
    texts: list[str] | None = None,
    op: ChangeOp = ChangeOp.UPSERT,
    tenant: str = "acme",
    document_id: str = "doc-1",
    acl: list[str] | None = None,
    metadata: dict[str, object] | None = None,
) -> ChunksEnriched:
    """An upsert (one chunk per text, chunk ids from the text) or, with `op=DELETE`, a delete."""
    texts = [] if op is ChangeOp.DELETE else (texts if texts is not None else [f"text of v{version}"])
    chunks = [
        Chunk(
            chunk_id=f"{document_id}:{hashlib.sha256(t.encode()).hexdigest()[:12]}",
            position=i,
            text=t,
            content_hash=hashlib.sha256(t.encode()).hexdigest(),
            token_count=len(t.split()),
        )
        for i, t in enumerate(texts)
    ]
    vectors = [
        ChunkVectors(
            chunk_id=c.chunk_id,
            dense=vector_for(c.text),
            sparse=SparseVector(
                indices=sorted({len(w) for w in c.text.split()}),
                values=[1.0] * len({len(w) for w in c.text.split()}),
            ),
        )
        for c in chunks
    ]
    return ChunksEnriched(
        event_id=f"{document_id}-{version}-{op.value}",
        op=op,
        tenant=tenant,
        document_id=document_id,
        version=version,
        source=SourceRef(kind=SourceKind.API),
        occurred_at=NOW,
        title=f"Title v{version}",
        metadata=metadata or {},
        acl=acl or [],
        chunks=chunks,
        model="test-model",
        dimension=DIM,
        vectors=vectors,
        entities=[ChunkEntities(chunk_id=c.chunk_id, entity_ids=[f"ent-{c.position}"]) for c in chunks],
    )
