"""Builders of graph-builder input events, shared by the unit and integration tests."""

from __future__ import annotations

import re
from collections.abc import Mapping

from schemas import (
    ChangeOp,
    Chunk,
    ChunkMention,
    ChunksEmbedded,
    ChunkVectors,
    SourceKind,
    SourceRef,
    SparseVector,
)


def mentions_of(text: str, entities: Mapping[str, str]) -> list[ChunkMention]:
    """A mention for every occurrence of each surface form (surface → label)."""
    return sorted(
        (
            ChunkMention(label=label, text=surface, start=m.start(), end=m.end())
            for surface, label in entities.items()
            for m in re.finditer(re.escape(surface), text)
        ),
        key=lambda m: m.start,
    )


def chunk(chunk_id: str, text: str, entities: Mapping[str, str] | None = None, *, position: int = 0) -> Chunk:
    """A chunk whose upstream mentions are `entities`, or None (NER still to run) when not given."""
    mentions = None if entities is None else mentions_of(text, entities)
    return Chunk(
        chunk_id=chunk_id,
        position=position,
        text=text,
        content_hash="0" * 64,
        token_count=len(text.split()),
        mentions=mentions,
    )


def embedded(
    *chunks: Chunk,
    tenant: str = "acme",
    document_id: str = "doc-1",
    version: int = 1,
    op: ChangeOp = ChangeOp.UPSERT,
) -> ChunksEmbedded:
    """A `chunks.embedded` event over `chunks`, with tiny vectors."""
    chunk_list = [] if op is ChangeOp.DELETE else list(chunks)
    return ChunksEmbedded(
        event_id=f"{tenant}-{document_id}-{version}",
        op=op,
        tenant=tenant,
        document_id=document_id,
        version=version,
        source=SourceRef(kind=SourceKind.API),
        model="test-model",
        dimension=2,
        chunks=chunk_list,
        vectors=[
            ChunkVectors(chunk_id=c.chunk_id, dense=[1.0, 0.0], sparse=SparseVector(indices=[], values=[]))
            for c in chunk_list
        ],
    )


def deleted(*, tenant: str = "acme", document_id: str = "doc-1", version: int) -> ChunksEmbedded:
    return embedded(tenant=tenant, document_id=document_id, version=version, op=ChangeOp.DELETE)
