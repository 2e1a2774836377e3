"""The embedding stage: dense vectors from a pluggable backend, BM25 sparse vectors, a vector cache."""

from services.embedder.errors import EmbedderError, PermanentEmbeddingError, TransientEmbeddingError
from services.embedder.logic import embed_chunk_sets, plan_batches
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.sparse import SparseEncoder

__all__ = [
    "EmbedderError",
    "EmbeddingBackend",
    "EmbeddingCache",
    "PermanentEmbeddingError",
    "SparseEncoder",
    "TransientEmbeddingError",
    "embed_chunk_sets",
    "plan_batches",
]
