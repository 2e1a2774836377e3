"""Migration state and the collection registry in Postgres, so every process agrees and a crash at any
step resumes: the CLI records what operators decided, the index-owning process carries it out."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from headwater.kernel.postgres import DDL_LOCK
from services.indexer.errors import MigrationError
from services.indexer.migration.plan import IndexCollection, Migration, MigrationState, next_state

Connect = Callable[[], psycopg.Connection[Any]]

SCHEMA = (
    DDL_LOCK
    + """
CREATE TABLE IF NOT EXISTS index_collections (
    name        text PRIMARY KEY,
    alias       text NOT NULL,
    model_id    text NOT NULL,
    dimension   integer NOT NULL CHECK (dimension > 0),
    profile     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE TABLE IF NOT EXISTS index_migrations (
    id                bigserial PRIMARY KEY,
    alias             text NOT NULL,
    source            text NOT NULL REFERENCES index_collections (name),
    target            text NOT NULL REFERENCES index_collections (name),
    state             text NOT NULL,
    applied_state     text,
    scan_cursor       text,
    backfill_complete boolean NOT NULL DEFAULT false,
    scanned_points    bigint NOT NULL DEFAULT 0,
    total_points      bigint,
    reembedded_points bigint NOT NULL DEFAULT 0,
    embedded_texts    bigint NOT NULL DEFAULT 0,
    decisions         jsonb NOT NULL DEFAULT '[]',
    started_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- One active migration per alias: a second `start` fails here, whichever process races.
CREATE UNIQUE INDEX IF NOT EXISTS index_migrations_one_active ON index_migrations (alias)
    WHERE state IN ('backfilling', 'cut_over', 'rolled_back');
"""
)
_MIGRATION = """
SELECT m.id, m.alias, m.state, m.applied_state, m.backfill_complete, m.reembedded_points,
       m.embedded_texts, m.started_at, m.updated_at, m.decisions, m.scanned_points, m.total_points,
       s.name, s.alias, s.model_id, s.dimension, s.profile,
       t.name, t.alias, t.model_id, t.dimension, t.profile
FROM index_migrations m
JOIN index_collections s ON s.name = m.source
JOIN index_collections t ON t.name = m.target
"""


class MigrationStore:
    """One connection, reopened after the server restarts; safe to share between threads."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def ensure_schema(self) -> None:
        self._run(SCHEMA, None)

    # -- collection registry -------------------------------------------------------------------------

    def register(self, collection: IndexCollection) -> IndexCollection:
        """Record a collection's model (first writer wins) and return what is recorded."""
        self._run(
            "INSERT INTO index_collections (name, alias, model_id, dimension, profile)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (
                collection.name,
                collection.alias,
                collection.model_id,
                collection.dimension,
                Jsonb(collection.profile) if collection.profile is not None else None,
            ),
        )
        found = self.collection(collection.name)
        assert found is not None
        return found

    def collection(self, name: str) -> IndexCollection | None:
        rows = self._run(
            "SELECT name, alias, model_id, dimension, profile FROM index_collections WHERE name = %s", (name,)
        )
        return _collection(rows[0]) if rows else None

    def live_collections(self, alias: str) -> list[IndexCollection]:
        rows = self._run(
            "SELECT name, alias, model_id, dimension, profile FROM index_collections"
            " WHERE alias = %s AND retired_at IS NULL ORDER BY created_at, name",
            (alias,),
        )
        return [_collection(r) for r in rows]

    def record_profile(self, name: str, profile: dict[str, Any]) -> None:
        """Fill in the profile of a collection an indexer registered knowing only its model id."""
        self._run(
            "UPDATE index_collections SET profile = %s WHERE name = %s AND profile IS NULL",
            (Jsonb(profile), name),
        )

    def is_live(self, name: str) -> bool:
        rows = self._run("SELECT retired_at IS NULL FROM index_collections WHERE name = %s", (name,))
        return bool(rows and rows[0][0])

    def retire(self, name: str) -> None:
        self._run(
            "UPDATE index_collections SET retired_at = coalesce(retired_at, now()) WHERE name = %s", (name,)
        )

    # -- migrations ----------------------------------------------------------------------------------

    def start(self, *, alias: str, source: IndexCollection, target: IndexCollection) -> Migration:
        self.register(source)
        self.register(target)
        try:
            rows = self._run(
                "INSERT INTO index_migrations (alias, source, target, state) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (alias, source.name, target.name, MigrationState.BACKFILLING.value),
            )
        except psycopg.errors.UniqueViolation:
            raise MigrationError(
                f"alias {alias!r} already has an active migration; see `headwater migrate status`"
            ) from None
        migration = self.get(rows[0][0])
        assert migration is not None
        return migration

    def get(self, migration_id: int) -> Migration | None:
        rows = self._run(_MIGRATION + " WHERE m.id = %s", (migration_id,))
        return _migration(rows[0]) if rows else None

    def current(self, alias: str) -> Migration | None:
        """The active migration of `alias`, else its latest one (None if it never had one)."""
        rows = self._run(
            _MIGRATION
            + " WHERE m.alias = %s ORDER BY m.state IN ('backfilling', 'cut_over', 'rolled_back') DESC,"
            " m.id DESC LIMIT 1",
            (alias,),
        )
        return _migration(rows[0]) if rows else None

    def history(self, alias: str) -> list[Migration]:
        return [_migration(r) for r in self._run(_MIGRATION + " WHERE m.alias = %s ORDER BY m.id", (alias,))]

    def transition(self, migration_id: int, command: str, *, record: dict[str, Any]) -> Migration:
        """Move to the state `command` leads to and append `record` to the decisions, atomically: two
        operators racing get one transition and one MigrationError."""
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                row = conn.execute(
                    "SELECT state FROM index_migrations WHERE id = %s FOR UPDATE", (migration_id,)
                ).fetchone()
                if row is None:
                    raise MigrationError(f"no migration {migration_id}")
                new = next_state(MigrationState(row[0]), command)
                conn.execute(
                    "UPDATE index_migrations SET state = %s, decisions = decisions || %s, updated_at = now()"
                    " WHERE id = %s",
                    (new.value, Jsonb([record]), migration_id),
                )
        migration = self.get(migration_id)
        assert migration is not None
        return migration

    def record_decision(self, migration_id: int, record: dict[str, Any]) -> None:
        """Keep a refused command's evidence too."""
        self._run(
            "UPDATE index_migrations SET decisions = decisions || %s, updated_at = now() WHERE id = %s",
            (Jsonb([record]), migration_id),
        )

    def mark_applied(self, migration_id: int, state: MigrationState) -> None:
        self._run(
            "UPDATE index_migrations SET applied_state = %s, updated_at = now() WHERE id = %s",
            (state.value, migration_id),
        )

    def add_progress(self, migration_id: int, *, points: int, texts: int) -> None:
        if points or texts:
            self._run(
                "UPDATE index_migrations SET reembedded_points = reembedded_points + %s,"
                " embedded_texts = embedded_texts + %s, updated_at = now() WHERE id = %s",
                (points, texts, migration_id),
            )

    def scan_cursor(self, migration_id: int) -> tuple[str | None, bool]:
        rows = self._run(
            "SELECT scan_cursor, backfill_complete FROM index_migrations WHERE id = %s", (migration_id,)
        )
        return (rows[0][0], bool(rows[0][1])) if rows else (None, False)

    def save_scan(
        self, migration_id: int, *, cursor: str | None, complete: bool, scanned: int, total: int
    ) -> None:
        """Where the copy scan goes on after a restart; `scanned` adds to the count, `total` replaces it."""
        self._run(
            "UPDATE index_migrations SET scan_cursor = %s, backfill_complete = %s,"
            " scanned_points = scanned_points + %s, total_points = %s, updated_at = now() WHERE id = %s",
            (cursor, complete, scanned, total, migration_id),
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _run(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    cursor = self._connection().execute(sql, params)
                    return cursor.fetchall() if cursor.description else []
                except psycopg.OperationalError:  # the server restarted: reconnect once
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")


def _collection(row: tuple[Any, ...]) -> IndexCollection:
    name, alias, model_id, dimension, profile = row
    return IndexCollection(name=name, alias=alias, model_id=model_id, dimension=dimension, profile=profile)


def _migration(row: tuple[Any, ...]) -> Migration:
    (mid, alias, state, applied, complete, points, texts, started, updated, decisions, scanned, total) = row[
        :12
    ]
    applied_state = MigrationState(applied) if applied else None
    return Migration(
        id=mid,
        alias=alias,
        source=_collection(row[12:17]),
        target=_collection(row[17:22]),
        state=MigrationState(state),
        applied_state=applied_state,
        backfill_complete=complete,
        reembedded_points=points,
        embedded_texts=texts,
        started_at=started,
        updated_at=updated,
        decisions=list(decisions),
        scanned_points=scanned,
        total_points=total,
    )
