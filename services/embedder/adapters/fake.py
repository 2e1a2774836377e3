"""A deterministic, dependency-free embedding backend for fast tests of every stage."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from services.embedder.ports import Matrix
from services.embedder.vectors import l2_normalise


class HashingBackend:
    """Hashes character n-grams into a fixed dimension: similar strings get similar vectors, no model."""

    def __init__(self, *, dimension: int = 64, ngram: int = 3, model_id: str | None = None) -> None:
        self.dimension = dimension
        self.ngram = ngram
        self.model_id = model_id or f"hashing-{ngram}gram-{dimension}"
        self.max_input_tokens = 512
        self.calls: list[int] = []  # batch sizes seen, so tests can prove the cache skipped the backend

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Return one normalised row per text."""
        self.calls.append(len(texts))
        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            padded = f" {text.lower()} "
            for j in range(max(1, len(padded) - self.ngram + 1)):
                digest = hashlib.blake2b(padded[j : j + self.ngram].encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                # A signed hash keeps collisions from always adding up in the same direction.
                rows[i, bucket] += 1.0 if digest[4] & 1 else -1.0
        return l2_normalise(rows)
