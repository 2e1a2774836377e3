"""KeyStore on Postgres (psycopg 3): one table in the connection's search_path."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from headwater.kernel.postgres import DDL_LOCK
from headwater.kernel.ratelimit import RateLimit
from services.query.errors import KeyStoreError
from services.query.ports import ApiKey

Connect = Callable[[], psycopg.Connection[Any]]

SCHEMA = (
    DDL_LOCK
    + """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id          text PRIMARY KEY,
    tenant          text NOT NULL,
    acl_groups      text[] NOT NULL,
    secret_sha256   bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
    label           text NOT NULL DEFAULT '',
    rate_per_second double precision CHECK (rate_per_second > 0),
    burst           integer CHECK (burst >= 1),
    created_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    CHECK ((rate_per_second IS NULL) = (burst IS NULL))
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant);
"""
)
_INSERT = (
    "INSERT INTO api_keys (key_id, tenant, acl_groups, secret_sha256, label, rate_per_second, burst,"
    " created_at, revoked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_GET = (
    "SELECT key_id, tenant, acl_groups, secret_sha256, label, rate_per_second, burst, created_at, revoked_at"
    " FROM api_keys WHERE key_id = %s"
)
_REVOKE = (
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE key_id = %s RETURNING"
    " key_id, tenant, acl_groups, secret_sha256, label, rate_per_second, burst, created_at, revoked_at"
)
_LIST = (
    "SELECT key_id, tenant, acl_groups, secret_sha256, label, rate_per_second, burst, created_at, revoked_at"
    " FROM api_keys WHERE %(t)s::text IS NULL OR tenant = %(t)s ORDER BY created_at, key_id"
)


class PostgresKeyStore:
    """Keys in `api_keys`. One connection, opened on first use and reopened after the server restarts."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # request threads share the connection

    def ensure_schema(self) -> None:
        """Create the table if missing."""
        self._run(SCHEMA, None, retry=True)  # no parameters: several statements in one call

    def add(self, key: ApiKey) -> None:
        limit = key.rate_limit
        params = (
            key.key_id,
            key.tenant,
            list(key.acl_groups),
            key.secret_sha256,
            key.label,
            limit.per_second if limit else None,
            limit.burst if limit else None,
            key.created_at,
            key.revoked_at,
        )
        # Not retried: a connection lost after the insert committed would make the retry a duplicate.
        self._run(_INSERT, params)

    def get(self, key_id: str) -> ApiKey | None:
        rows = self._run(_GET, (key_id,), retry=True)
        return _key(rows[0]) if rows else None

    def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        rows = self._run(_REVOKE, (at, key_id), retry=True)
        return _key(rows[0]) if rows else None

    def list_keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        rows = self._run(_LIST, {"t": tenant}, retry=True)
        return [_key(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _run(self, sql: str, params: Any, *, retry: bool = False) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self._connect()
                    cursor = self._conn.execute(sql, params)
                    return cursor.fetchall() if cursor.description else []
                except psycopg.OperationalError as exc:  # connection lost: reconnect once
                    self._drop()
                    if not retry or attempt == 2:
                        raise KeyStoreError(f"key store: {exc}") from exc
                except psycopg.Error as exc:
                    raise KeyStoreError(f"key store: {exc}") from exc
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, groups, digest, label, per_second, burst, created_at, revoked_at = row
    return ApiKey(
        key_id=key_id,
        tenant=tenant,
        acl_groups=tuple(groups),
        secret_sha256=bytes(digest),
        label=label,
        rate_limit=RateLimit(float(per_second), int(burst)) if per_second is not None else None,
        created_at=created_at,
        revoked_at=revoked_at,
    )
