"""Chunk sets as they move from the chunker through embedding and graph extraction to the indexer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import AclGroup, ChangeOp, Contract, DocumentHeader, Metadata


class ChunkMention(Contract):
    """A named entity inside a chunk's text (character offsets into `Chunk.text`)."""

    label: str
    text: str
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]


class Chunk(Contract):
    """One retrievable passage of a document version."""

    chunk_id: str  # deterministic: tenant, document, position and content hash
    position: Annotated[int, Field(ge=0)]
    text: str
    content_hash: str  # sha256 of the text, hex; also the embedding-cache key
    token_count: Annotated[int, Field(ge=0)]
    headings: list[str] = Field(default_factory=list)  # the heading path the chunk sits under
    # None: no upstream NER ran, graph extraction must find entities itself.
    mentions: list[ChunkMention] | None = None


class SparseVector(Contract):
    indices: list[Annotated[int, Field(ge=0)]]
    values: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> SparseVector:
        if len(self.indices) != len(self.values):
            raise ValueError("sparse indices and values differ in length")
        return self


class ChunkVectors(Contract):
    chunk_id: str
    dense: list[float]
    sparse: SparseVector


class ChunkEntities(Contract):
    chunk_id: str
    entity_ids: list[str]


class _ChunkSetBody(DocumentHeader):
    content_type: str | None = None
    title: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    acl: list[AclGroup] = Field(default_factory=list)
    pii_counts: dict[str, int] = Field(default_factory=dict)
    chunks: list[Chunk] = Field(default_factory=list)

    @model_validator(mode="after")
    def _delete_has_no_chunks(self) -> _ChunkSetBody:
        if self.op is ChangeOp.DELETE and self.chunks:
            raise ValueError("a delete carries no chunks")
        return self


class ChunksCreated(_ChunkSetBody):
    """Event: a document version was cut into chunks (a delete carries none)."""

    kind: Literal["chunks.created"] = "chunks.created"


class ChunksEmbedded(_ChunkSetBody):
    """Event: every chunk of a version has dense and sparse vectors from one model."""

    kind: Literal["chunks.embedded"] = "chunks.embedded"
    model: str
    dimension: Annotated[int, Field(gt=0)]
    vectors: list[ChunkVectors] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_vector_per_chunk(self) -> ChunksEmbedded:
        if [v.chunk_id for v in self.vectors] != [c.chunk_id for c in self.chunks]:
            raise ValueError("vectors must match chunks one to one, in order")
        if any(len(v.dense) != self.dimension for v in self.vectors):
            raise ValueError("a dense vector does not have the declared dimension")
        return self


class ChunksEnriched(ChunksEmbedded):
    """Event: embedded chunks with the knowledge-graph entities they mention; ready to index."""

    kind: Literal["chunks.enriched"] = "chunks.enriched"  # type: ignore[assignment]
    entities: list[ChunkEntities] = Field(default_factory=list)
