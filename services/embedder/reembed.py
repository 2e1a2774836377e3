"""Re-embedding for a model migration: the same change, its dense vectors from another model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas import ChunksEnriched, ChunkVectors
from services.embedder.logic import embed_chunks
from services.embedder.ports import EmbeddingBackend, EmbeddingCache, Matrix


class CountingBackend:
    """Counts the texts a backend actually embeds (cache misses), for progress and for proving that a
    resumed backfill does not embed finished chunks again."""

    def __init__(self, inner: EmbeddingBackend) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_input_tokens = inner.max_input_tokens
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> Matrix:
        rows = self.inner.embed(texts)
        self.texts += len(texts)
        return rows


@dataclass
class Reembedder:
    """Turns a change embedded by one model into the same change embedded by `backend`; sparse vectors
    do not depend on the dense model and are kept as they are."""

    backend: CountingBackend
    cache: EmbeddingCache
    max_batch_tokens: int = 8192
    max_batch_size: int = 64

    def __call__(self, events: list[ChunksEnriched]) -> list[ChunksEnriched]:
        dense = embed_chunks(
            {c.content_hash: c for e in events for c in e.chunks},
            backend=self.backend,
            cache=self.cache,
            max_batch_tokens=self.max_batch_tokens,
            max_batch_size=self.max_batch_size,
        )
        return [
            event.model_copy(
                update={
                    "model": self.backend.model_id,
                    "dimension": self.backend.dimension,
                    "vectors": [
                        ChunkVectors(
                            chunk_id=v.chunk_id, dense=dense[c.content_hash].tolist(), sparse=v.sparse
                        )
                        for c, v in zip(event.chunks, event.vectors, strict=True)
                    ],
                }
            )
            for event in events
        ]
