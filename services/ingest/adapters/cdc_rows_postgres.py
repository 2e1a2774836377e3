"""CDC row state on Postgres (psycopg 3): two tables in the connection's search_path.

Only identities and LSNs are kept (tenant, document id, primary key), never row contents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from headwater.kernel.postgres import DDL_LOCK
from services.ingest.cdc.logic import Identity, TrackedRow, delete_version
from services.ingest.errors import CdcStateUnavailable

Connect = Callable[[], psycopg.Connection[Any]]

SCHEMA = (
    DDL_LOCK
    + """
CREATE TABLE IF NOT EXISTS cdc_rows (
    source                 text NOT NULL,  -- the Debezium topic: one connector's table
    row_key                text NOT NULL,  -- the primary key as canonical JSON
    tenant                 text NOT NULL,
    document_id            text NOT NULL,
    lsn                    bigint NOT NULL,
    deleted_version        bigint,
    retracted_tenant       text,
    retracted_document_id  text,
    PRIMARY KEY (source, row_key)
);
CREATE TABLE IF NOT EXISTS cdc_truncates (
    source  text PRIMARY KEY,
    lsn     bigint NOT NULL
);
"""
)
_COLUMNS = "row_key, tenant, document_id, lsn, deleted_version, retracted_tenant, retracted_document_id"


def _tracked(row: tuple[Any, ...]) -> tuple[str, TrackedRow]:
    key, tenant, document_id, lsn, deleted, retracted_tenant, retracted_id = row
    retracted = Identity(retracted_tenant, retracted_id) if retracted_tenant is not None else None
    return key, TrackedRow(Identity(tenant, document_id), lsn, deleted, retracted)


class _State:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def get(self, source: str, row_key: str) -> TrackedRow | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cdc_rows WHERE source = %s AND row_key = %s",  # noqa: S608 - constant
            (source, row_key),
        ).fetchone()
        return _tracked(row)[1] if row is not None else None

    def truncated_at(self, source: str) -> int | None:
        row = self._conn.execute("SELECT lsn FROM cdc_truncates WHERE source = %s", (source,)).fetchone()
        return int(row[0]) if row is not None else None

    def rows_to_truncate(self, source: str, lsn: int) -> list[tuple[str, TrackedRow]]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cdc_rows WHERE source = %s"  # noqa: S608 - constant
            " AND ((deleted_version IS NULL AND lsn < %s) OR deleted_version = %s) ORDER BY row_key",
            (source, lsn, delete_version(lsn)),
        ).fetchall()
        return [_tracked(row) for row in rows]

    def put(self, source: str, row_key: str, row: TrackedRow) -> None:
        retracted = row.retracted
        self._conn.execute(
            f"INSERT INTO cdc_rows (source, {_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
            " ON CONFLICT (source, row_key) DO UPDATE SET tenant = EXCLUDED.tenant,"
            " document_id = EXCLUDED.document_id, lsn = EXCLUDED.lsn,"
            " deleted_version = EXCLUDED.deleted_version, retracted_tenant = EXCLUDED.retracted_tenant,"
            " retracted_document_id = EXCLUDED.retracted_document_id",
            (
                source,
                row_key,
                row.identity.tenant,
                row.identity.document_id,
                row.lsn,
                row.deleted_version,
                retracted.tenant if retracted else None,
                retracted.document_id if retracted else None,
            ),
        )

    def record_truncate(self, source: str, lsn: int) -> None:
        self._conn.execute(
            "INSERT INTO cdc_truncates (source, lsn) VALUES (%s, %s)"
            " ON CONFLICT (source) DO UPDATE SET lsn = GREATEST(cdc_truncates.lsn, EXCLUDED.lsn)",
            (source, lsn),
        )


class PostgresRowTracker:
    """One connection (the CDC consumer handles one batch at a time), reopened after a server restart."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None

    def ensure_schema(self) -> None:
        """Create the tables if missing."""
        with self.transaction():
            assert self._conn is not None
            self._conn.execute(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[_State]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            with self._conn.transaction():
                yield _State(self._conn)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) and self._conn is not None:
                self._conn.close()  # reconnect on the next batch
                self._conn = None
            raise CdcStateUnavailable(f"CDC row state: {type(exc).__name__}: {exc}") from exc
