"""Keeps the first n dimensions of another backend's vectors and re-normalises them."""

from __future__ import annotations

from collections.abc import Sequence

from services.embedder.errors import PermanentEmbeddingError
from services.embedder.ports import EmbeddingBackend, Matrix
from services.embedder.vectors import l2_normalise


class TruncatedBackend:
    """A smaller index from the same model (Matryoshka-style); a distinct model id, so never mixed."""

    def __init__(self, inner: EmbeddingBackend, dimensions: int) -> None:
        if not 0 < dimensions <= inner.dimension:
            raise PermanentEmbeddingError(
                f"cannot keep {dimensions} of {inner.model_id}'s {inner.dimension} dimensions"
            )
        self.inner = inner
        self.dimension = dimensions
        self.model_id = f"{inner.model_id}+d{dimensions}"
        self.max_input_tokens = inner.max_input_tokens

    def embed(self, texts: Sequence[str]) -> Matrix:
        return l2_normalise(self.inner.embed(texts)[:, : self.dimension])
