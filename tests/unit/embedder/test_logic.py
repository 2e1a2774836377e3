from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from schemas import ChangeOp, ChunksCreated, ChunksEmbedded
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.adapters.fake import HashingBackend
from services.embedder.errors import CacheUnavailableError, PermanentEmbeddingError
from services.embedder.logic import embed_chunk_sets
from services.embedder.ports import EmbeddingCache, Matrix, Vector
from services.embedder.sparse import SparseEncoder
from tests.builders import chunk_set


class SpoiledBackend(HashingBackend):
    """Returns one bad row (NaN) or rows of the wrong width."""

    def __init__(self, *, nan_for: str | None = None, width: int | None = None) -> None:
        super().__init__()
        self.nan_for, self.width = nan_for, width

    def embed(self, texts: Sequence[str]) -> Matrix:
        rows = super().embed(texts)
        if self.width is not None:
            return np.zeros((len(texts), self.width), dtype=np.float32)
        for i, text in enumerate(texts):
            if text == self.nan_for:
                rows[i, 0] = np.nan
        return rows


class BrokenCache:
    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, Vector]:
        raise CacheUnavailableError("down")

    def put_many(self, model_id: str, items: Mapping[str, Vector]) -> None:
        raise CacheUnavailableError("down")


def _embed(
    sets: list[ChunksCreated], backend: HashingBackend, cache: EmbeddingCache | None = None, **kw: int
) -> list[ChunksEmbedded]:
    return embed_chunk_sets(
        sets,
        backend=backend,
        cache=InMemoryEmbeddingCache() if cache is None else cache,
        sparse=SparseEncoder(),
        **kw,
    )


def test_output_copies_the_input_and_adds_one_vector_per_chunk_in_order() -> None:
    backend = HashingBackend(dimension=32)
    source = chunk_set("doc-1", ["alpha beta", "gamma delta", "epsilon"])
    (out,) = _embed([source], backend)
    assert out.model == backend.model_id
    assert out.dimension == 32
    assert out.model_dump(exclude={"kind", "model", "dimension", "vectors"}) == source.model_dump(
        exclude={"kind"}
    )
    assert [v.chunk_id for v in out.vectors] == ["doc-1:0", "doc-1:1", "doc-1:2"]
    expected = backend.embed(["alpha beta", "gamma delta", "epsilon"])
    assert np.allclose([v.dense for v in out.vectors], expected)
    assert all(v.sparse.indices == sorted(set(v.sparse.indices)) for v in out.vectors)
    assert out.vectors[0].sparse == SparseEncoder().encode_document("alpha beta")


def test_duplicates_across_sets_are_embedded_once() -> None:
    backend = HashingBackend()
    sets = [chunk_set("a", ["same text", "only a"]), chunk_set("b", ["same text", "only b", "only a"])]
    out = _embed(sets, backend)
    assert sum(backend.calls) == 3  # "same text", "only a", "only b"
    assert out[0].vectors[0].dense == out[1].vectors[0].dense
    assert out[0].vectors[1].dense == out[1].vectors[2].dense


def test_cache_hits_skip_the_backend() -> None:
    backend, cache = HashingBackend(), InMemoryEmbeddingCache()
    first = _embed([chunk_set("a", ["one", "two"])], backend, cache)
    assert backend.calls == [2]
    second = _embed([chunk_set("b", ["two", "three"]), chunk_set("c", ["one"])], backend, cache)
    assert backend.calls == [2, 1]  # only "three" was new
    assert second[0].vectors[0].dense == first[0].vectors[1].dense
    third = _embed([chunk_set("a", ["one", "two"])], backend, cache)
    assert backend.calls == [2, 1]
    assert third[0].vectors[1].dense == first[0].vectors[1].dense


def test_cache_is_keyed_by_model() -> None:
    cache = InMemoryEmbeddingCache()
    _embed([chunk_set("a", ["one"])], HashingBackend(dimension=16), cache)
    other = HashingBackend(dimension=24)
    (out,) = _embed([chunk_set("a", ["one"])], other, cache)
    assert other.calls == [1]
    assert out.dimension == 24


def test_an_unavailable_cache_only_costs_work() -> None:
    backend = HashingBackend()
    (out,) = _embed([chunk_set("a", ["one", "two"])], backend, BrokenCache())
    assert backend.calls == [2]
    assert len(out.vectors) == 2


def test_misses_are_batched_by_token_budget() -> None:
    backend = HashingBackend()
    texts = [f"word{i} " * 10 for i in range(7)]  # 10 tokens each (+2 special tokens)
    _embed([chunk_set("a", texts)], backend, max_batch_tokens=30, max_batch_size=64)
    assert backend.calls == [2, 2, 2, 1]
    backend = HashingBackend()
    _embed([chunk_set("a", texts)], backend, max_batch_tokens=10_000, max_batch_size=3)
    assert backend.calls == [3, 3, 1]


def test_deletes_pass_through_without_vectors() -> None:
    backend = HashingBackend()
    deleted = chunk_set("gone", [], op=ChangeOp.DELETE, version=7)
    out = _embed([deleted, chunk_set("kept", ["text"])], backend)
    assert out[0].op is ChangeOp.DELETE
    assert out[0].vectors == []
    assert out[0].chunks == []
    assert out[0].document_id == "gone"
    assert out[0].version == 7
    assert out[0].event_id == deleted.event_id
    assert backend.calls == [1]


def test_nan_vector_is_a_permanent_error_naming_the_chunk() -> None:
    backend = SpoiledBackend(nan_for="bad")
    with pytest.raises(PermanentEmbeddingError, match=r"NaN .* chunk d:1 of acme/d"):
        _embed([chunk_set("d", ["good", "bad"])], backend)


def test_wrong_dimension_is_a_permanent_error() -> None:
    with pytest.raises(PermanentEmbeddingError, match="dimension 7, not 64"):
        _embed([chunk_set("d", ["good"])], SpoiledBackend(width=7))


def test_a_poisoned_cache_entry_is_recomputed() -> None:
    backend, cache = HashingBackend(), InMemoryEmbeddingCache()
    source = chunk_set("a", ["one"])
    cache.put_many(backend.model_id, {source.chunks[0].content_hash: np.full(64, np.nan, dtype=np.float32)})
    (out,) = _embed([source], backend, cache)
    assert backend.calls == [1]
    assert np.isfinite(out.vectors[0].dense).all()
