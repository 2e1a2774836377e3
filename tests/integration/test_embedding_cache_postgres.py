"""PostgresEmbeddingCache against a real Postgres, one schema per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import pytest

from headwater.kernel.postgres import connect
from services.embedder.adapters.cache import PostgresEmbeddingCache
from services.embedder.adapters.fake import HashingBackend
from services.embedder.errors import CacheUnavailableError
from services.embedder.logic import embed_chunk_sets
from services.embedder.sparse import SparseEncoder
from tests.builders import chunk_set


def _vectors(n: int, dim: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {f"hash-{i}": rng.standard_normal(dim).astype(np.float32) for i in range(n)}


def test_round_trip_is_bit_exact_and_keyed_by_model(pg: psycopg.Connection[Any]) -> None:
    cache = PostgresEmbeddingCache(connection=pg)
    cache.ensure_schema()
    cache.ensure_schema()  # idempotent
    items = _vectors(50)
    cache.put_many("model-a", items)
    found = cache.get_many("model-a", [*items, "absent"])
    assert set(found) == set(items)
    assert all(np.array_equal(found[h], items[h]) and found[h].dtype == np.float32 for h in items)
    assert cache.get_many("model-b", list(items)) == {}
    row = pg.execute(
        "SELECT dim, length(vector), created_at IS NOT NULL FROM embedding_cache LIMIT 1"
    ).fetchone()
    assert row == (8, 32, True)


def test_existing_rows_win(pg: psycopg.Connection[Any]) -> None:
    cache = PostgresEmbeddingCache(connection=pg)
    cache.ensure_schema()
    first = np.ones(4, dtype=np.float32)
    cache.put_many("m", {"h": first})
    cache.put_many("m", {"h": np.zeros(4, dtype=np.float32), "k": first})
    assert np.array_equal(cache.get_many("m", ["h"])["h"], first)
    assert pg.execute("SELECT count(*) FROM embedding_cache").fetchone() == (2,)


def test_a_connection_factory_and_the_stage_logic(postgres_url: str, pg: psycopg.Connection[Any]) -> None:
    schema = pg.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]

    @contextmanager
    def factory() -> Iterator[psycopg.Connection[Any]]:
        conn = connect(postgres_url, schema=schema)
        try:
            yield conn
        finally:
            conn.close()

    cache = PostgresEmbeddingCache(conn_factory=factory)
    cache.ensure_schema()
    backend = HashingBackend()
    sets = [chunk_set("a", ["one", "two"])]
    first = embed_chunk_sets(sets, backend=backend, cache=cache, sparse=SparseEncoder())
    second = embed_chunk_sets(sets, backend=backend, cache=cache, sparse=SparseEncoder())
    assert backend.calls == [2]  # the second run was served from Postgres
    assert first == second


def test_database_errors_are_translated(pg: psycopg.Connection[Any]) -> None:
    cache = PostgresEmbeddingCache(connection=pg, table="missing_table")
    with pytest.raises(CacheUnavailableError, match="UndefinedTable"):
        cache.get_many("m", ["h"])
