"""Builders of the pipeline's events for tests of every tier, so a test states only what it is about.

Unless a test says otherwise (keywords `op`, `tenant`, `document_id`, `version`, `event_id`, `source`),
an event is an upsert of version 1 of tenant `acme`'s `doc-1` from the API, with an event id made of
those; any other keyword is a field of the contract. A delete carries no blocks or chunks: pass none."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from schemas import (
    BlockKind,
    ChangeOp,
    Chunk,
    ChunkEntities,
    ChunkMention,
    ChunksCreated,
    ChunksEmbedded,
    ChunksEnriched,
    ChunkVectors,
    DocumentChanged,
    DocumentHeader,
    DocumentRedacted,
    SourceKind,
    SourceRef,
    SparseVector,
    TextBlock,
)
from services.embedder.ports import EmbeddingBackend

API = SourceRef(kind=SourceKind.API)
DIM = 8  # the dimension of `vector_for`, the model of the indexer's tests
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

Event = TypeVar("Event", bound=DocumentHeader)
Embedded = TypeVar("Embedded", bound=ChunksEmbedded)
Dense = Callable[[list[str]], Iterable[Iterable[float]]]  # a batch of texts to a row each, as `embed`
Sparse = Callable[[str], SparseVector]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def para(text: str) -> TextBlock:
    return TextBlock(kind=BlockKind.PARAGRAPH, text=text)


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
    """A chunk of `text` (its sha256, a token a word) whose upstream mentions are `entities`, or None
    (NER still to run) when not given."""
    return Chunk(
        chunk_id=chunk_id,
        position=position,
        text=text,
        content_hash=sha256_hex(text),
        token_count=len(text.split()),
        mentions=None if entities is None else mentions_of(text, entities),
    )


def vector_for(text: str) -> list[float]:
    """A deterministic unit vector of `DIM` derived from the text."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b - 127.5 for b in digest[:DIM]]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def word_lengths(text: str) -> SparseVector:
    """A sparse vector of weight 1 at each word length in the text."""
    lengths = sorted({len(w) for w in text.split()})
    return SparseVector(indices=lengths, values=[1.0] * len(lengths))


def no_sparse(text: str) -> SparseVector:
    return SparseVector(indices=[], values=[])


def _event(
    contract: type[Event],
    *,
    op: ChangeOp = ChangeOp.UPSERT,
    tenant: str = "acme",
    document_id: str = "doc-1",
    version: int = 1,
    event_id: str | None = None,
    source: SourceRef = API,
    **fields: Any,
) -> Event:
    return contract(
        event_id=event_id or f"{tenant}-{document_id}-{version}-{op.value}",
        op=op,
        tenant=tenant,
        document_id=document_id,
        version=version,
        source=source,
        **fields,
    )


def document_changed(*blocks: TextBlock, **fields: Any) -> DocumentChanged:
    return _event(DocumentChanged, blocks=list(blocks), **fields)


def document_redacted(*blocks: TextBlock, **fields: Any) -> DocumentRedacted:
    return _event(DocumentRedacted, blocks=list(blocks), **fields)


def chunks_created(*chunks: Chunk, **fields: Any) -> ChunksCreated:
    return _event(ChunksCreated, chunks=list(chunks), **fields)


def chunks_embedded(*chunks: Chunk, **fields: Any) -> ChunksEmbedded:
    return _with_vectors(ChunksEmbedded, chunks, **fields)


def chunks_enriched(
    *chunks: Chunk, entities: Callable[[Chunk], list[str]] | None = None, **fields: Any
) -> ChunksEnriched:
    """Embedded `chunks` with the `entities` each mentions, or none listed."""
    listed = [ChunkEntities(chunk_id=c.chunk_id, entity_ids=entities(c)) for c in chunks] if entities else []
    return _with_vectors(ChunksEnriched, chunks, entities=listed, **fields)


def _with_vectors(
    contract: type[Embedded],
    chunks: Sequence[Chunk],
    *,
    backend: EmbeddingBackend | None = None,
    dense: Dense | None = None,
    sparse: Sparse = no_sparse,
    dimension: int = 2,
    model: str = "test-model",
    **fields: Any,
) -> Embedded:
    """`chunks` with dense rows for their texts from `backend` (its model and dimension) or `dense` (by
    default the first axis), and `sparse` vectors."""
    if backend is not None:
        dense, dimension, model = backend.embed, backend.dimension, backend.model_id
    texts = [c.text for c in chunks]
    rows = dense(texts) if dense and texts else [[1.0] + [0.0] * (dimension - 1) for _ in texts]
    vectors = [
        ChunkVectors(chunk_id=c.chunk_id, dense=[float(x) for x in row], sparse=sparse(c.text))
        for c, row in zip(chunks, rows, strict=True)
    ]
    return _event(contract, chunks=list(chunks), vectors=vectors, dimension=dimension, model=model, **fields)


def chunk_set(
    document_id: str, texts: list[str], *, op: ChangeOp = ChangeOp.UPSERT, version: int = 1
) -> ChunksCreated:
    """The embedder's input: a chunk per text, ids `<document>:<position>`, some metadata to copy."""
    return chunks_created(
        *[chunk(f"{document_id}:{i}", text, position=i) for i, text in enumerate(texts)],
        op=op,
        document_id=document_id,
        version=version,
        title=f"Title of {document_id}",
        metadata={"lang": "en"},
        acl=["staff"],
        pii_counts={"EMAIL": 1},
    )


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
    """The indexer's input: an upsert (a chunk per text, its id from the text so an unchanged text keeps
    it; `vector_for` each; an entity a chunk) or, with `op=DELETE`, a delete."""
    texts = [] if op is ChangeOp.DELETE else (texts if texts is not None else [f"text of v{version}"])
    return chunks_enriched(
        *[chunk(f"{document_id}:{sha256_hex(t)[:12]}", t, position=i) for i, t in enumerate(texts)],
        entities=lambda c: [f"ent-{c.position}"],
        dense=lambda batch: [vector_for(t) for t in batch],
        sparse=word_lengths,
        dimension=DIM,
        op=op,
        tenant=tenant,
        document_id=document_id,
        version=version,
        occurred_at=NOW,
        title=f"Title v{version}",
        metadata=metadata or {},
        acl=acl or [],
    )
