from __future__ import annotations

import numpy as np
import pytest

from services.embedder.adapters.cache import InMemoryEmbeddingCache


def _v(x: float) -> np.ndarray:
    return np.full(4, x, dtype=np.float32)


def test_round_trip_is_keyed_by_model_and_hash() -> None:
    cache = InMemoryEmbeddingCache(max_entries=10)
    cache.put_many("m1", {"h1": _v(1), "h2": _v(2)})
    found = cache.get_many("m1", ["h1", "h3"])
    assert list(found) == ["h1"]
    assert np.array_equal(found["h1"], _v(1))
    assert cache.get_many("m2", ["h1"]) == {}


def test_least_recently_used_entries_are_evicted() -> None:
    cache = InMemoryEmbeddingCache(max_entries=2)
    cache.put_many("m", {"a": _v(1), "b": _v(2)})
    cache.get_many("m", ["a"])  # "b" is now the least recently used
    cache.put_many("m", {"c": _v(3)})
    assert sorted(cache.get_many("m", ["a", "b", "c"])) == ["a", "c"]


def test_stored_vectors_are_copies() -> None:
    cache, vector = InMemoryEmbeddingCache(), _v(1)
    cache.put_many("m", {"a": vector})
    vector[:] = 9
    assert np.array_equal(cache.get_many("m", ["a"])["a"], _v(1))


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        InMemoryEmbeddingCache(max_entries=0)
