"""Ports of the embedding stage: a dense embedding backend and a cache of vectors by content hash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]


@runtime_checkable
class EmbeddingBackend(Protocol):
    """Turns texts into L2-normalised float32 rows; synchronous because stages run in worker threads."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_input_tokens(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Return an (n, dimension) float32 array, one normalised row per text, in input order."""
        ...


@runtime_checkable
class EmbeddingCache(Protocol):
    """Vectors already computed, keyed by (model id, content hash)."""

    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """Return the cached vectors among `hashes` (misses are absent)."""
        ...

    def put_many(self, model_id: str, items: Mapping[str, Vector]) -> None:
        """Store vectors; an existing entry for a hash is kept (same text, same model, same vector)."""
        ...
