"""Builders of chunk sets for the embedder's tests."""

from __future__ import annotations

import hashlib

from schemas import ChangeOp, Chunk, ChunksCreated, SourceKind, SourceRef


def chunk_set(
    document_id: str, texts: list[str], *, op: ChangeOp = ChangeOp.UPSERT, version: int = 1
) -> ChunksCreated:
    """A chunk set with one chunk per text, ids and hashes derived as the chunker does."""
    chunks = [
        Chunk(
            chunk_id=f"{document_id}:{i}",
            position=i,
            text=text,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            token_count=len(text.split()),
        )
        for i, text in enumerate(texts)
    ]
    return ChunksCreated(
        event_id=f"evt-{document_id}-{version}",
        op=op,
        tenant="acme",
        document_id=document_id,
        version=version,
        source=SourceRef(kind=SourceKind.API),
        title=f"Title of {document_id}",
        metadata={"lang": "en"},
        acl=["staff"],
        pii_counts={"EMAIL": 1},
        chunks=chunks if op is ChangeOp.UPSERT else [],
    )
