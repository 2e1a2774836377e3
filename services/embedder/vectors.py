"""Numeric helpers shared by the backends: L2 normalisation and mean pooling."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.embedder.ports import Matrix


def l2_normalise(rows: npt.NDArray[np.floating]) -> Matrix:
    """Scale each row to unit length (an all-zero row stays zero rather than becoming NaN)."""
    rows32 = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows32, axis=1, keepdims=True)
    return np.asarray(rows32 / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


def mean_pool(hidden: npt.NDArray[np.floating], mask: npt.NDArray[np.integer]) -> Matrix:
    """Average token states over the attention mask, as sentence-transformers' Pooling(mean) does."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
    return np.asarray(summed / counts, dtype=np.float32)
