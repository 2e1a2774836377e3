"""Embedding caches: a bounded in-memory LRU and a Postgres table keyed by (model id, content hash)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from headwater.kernel.postgres import DDL_LOCK
from services.embedder.errors import CacheUnavailableError
from services.embedder.ports import Vector

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class InMemoryEmbeddingCache:
    """Least-recently-used cache of at most `max_entries` vectors; safe to share between stage threads."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], Vector] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """Return the cached vectors among `hashes` and mark them recently used."""
        found: dict[str, Vector] = {}
        with self._lock:
            for h in hashes:
                vector = self._entries.get((model_id, h))
                if vector is not None:
                    self._entries.move_to_end((model_id, h))
                    found[h] = vector
        return found

    def put_many(self, model_id: str, items: Mapping[str, Vector]) -> None:
        """Store copies of the vectors, evicting the least recently used beyond `max_entries`."""
        with self._lock:
            for h, vector in items.items():
                self._entries[(model_id, h)] = np.array(vector, dtype=np.float32, copy=True)
                self._entries.move_to_end((model_id, h))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class PostgresEmbeddingCache:
    """Vectors as float32 bytes in `embedding_cache`, shared by every embedder process."""

    def __init__(
        self,
        *,
        connection: psycopg.Connection[Any] | None = None,
        conn_factory: ConnectionFactory | None = None,
        table: str = "embedding_cache",
    ) -> None:
        if (connection is None) == (conn_factory is None):
            raise ValueError("pass exactly one of connection or conn_factory")
        if conn_factory is None:
            shared = connection
            # A shared connection stays open: nullcontext() does not close it after each call.
            conn_factory = lambda: nullcontext(shared)  # type: ignore[arg-type]  # noqa: E731
        self._factory = conn_factory
        self._table = sql.Identifier(table)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        # psycopg errors are translated here so the stage logic never sees a driver exception.
        try:
            with self._factory() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise CacheUnavailableError(f"embedding cache: {type(exc).__name__}: {exc}") from exc

    def ensure_schema(self) -> None:
        """Create the table if it does not exist."""
        with self._transaction() as conn:
            conn.execute(DDL_LOCK)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (model_id text NOT NULL, content_hash text NOT NULL,"
                    " dim int NOT NULL, vector bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
                    " PRIMARY KEY (model_id, content_hash))"
                ).format(self._table)
            )

    def get_many(self, model_id: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """One `= ANY(%s)` query for the whole batch."""
        if not hashes:
            return {}
        query = sql.SQL(
            "SELECT content_hash, dim, vector FROM {} WHERE model_id = %s AND content_hash = ANY(%s)"
        )
        with self._transaction() as conn:
            rows = conn.execute(query.format(self._table), (model_id, list(hashes))).fetchall()
        found: dict[str, Vector] = {}
        for content_hash, dim, blob in rows:
            vector = np.frombuffer(bytes(blob), dtype="<f4")
            if vector.shape == (dim,):  # a torn or foreign row is a miss, not a crash
                found[content_hash] = vector.astype(np.float32)
        return found

    def put_many(self, model_id: str, items: Mapping[str, Vector]) -> None:
        """One multi-row insert; an existing row wins (same model and text give the same vector)."""
        if not items:
            return
        hashes = list(items)
        blobs = [np.asarray(items[h], dtype="<f4").tobytes() for h in hashes]
        dims = [int(np.asarray(items[h]).shape[0]) for h in hashes]
        query = sql.SQL(
            "INSERT INTO {} (model_id, content_hash, dim, vector)"
            " SELECT %s, h, d, v FROM unnest(%s::text[], %s::int[], %s::bytea[]) AS u(h, d, v)"
            " ON CONFLICT (model_id, content_hash) DO NOTHING"
        )
        with self._transaction() as conn:
            conn.execute(query.format(self._table), (model_id, hashes, dims, blobs))
