"""WebhookStore on Postgres (psycopg 3): three tables in the connection's search_path.

Secrets are stored as they are: an HMAC is computed with the key itself, so unlike an API key it
cannot be kept as a hash. Whoever reads this database can sign deliveries (docs/decisions/0006).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from headwater.kernel.postgres import DDL_LOCK
from schemas import Accepted
from services.ingest.errors import WebhookSourceError, WebhookStoreUnavailable
from services.ingest.webhooks import Delivery, WebhookSecret, WebhookSource

Connect = Callable[[], psycopg.Connection[Any]]
T = TypeVar("T")

SCHEMA = (
    DDL_LOCK
    + """
CREATE TABLE IF NOT EXISTS webhook_sources (
    name        text PRIMARY KEY,
    tenant      text NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);
CREATE TABLE IF NOT EXISTS webhook_secrets (
    source      text NOT NULL REFERENCES webhook_sources (name),
    secret      bytea NOT NULL CHECK (octet_length(secret) BETWEEN 24 AND 64),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    PRIMARY KEY (source, secret)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    source       text NOT NULL,
    webhook_id   text NOT NULL,
    body_sha256  bytea NOT NULL CHECK (octet_length(body_sha256) = 32),
    received_at  timestamptz NOT NULL,
    accepted     jsonb,
    PRIMARY KEY (source, webhook_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_received ON webhook_deliveries (received_at);
"""
)
_SOURCES = "SELECT name, tenant, created_at, retired_at FROM webhook_sources"
_SECRETS = "SELECT source, secret, created_at, expires_at FROM webhook_secrets"
_ADD_KEY = "INSERT INTO webhook_secrets (source, secret, created_at, expires_at) VALUES (%s, %s, %s, %s)"


class PostgresWebhookStore:
    """One connection, opened on first use and reopened after the server restarts."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # request threads share the connection

    def ensure_schema(self) -> None:
        """Create the tables if missing."""
        self._with(lambda conn: conn.execute(SCHEMA), retry=True)

    def create_source(self, source: WebhookSource) -> None:
        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO webhook_sources (name, tenant, created_at, retired_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (source.name, source.tenant, source.created_at, source.retired_at),
                )
                for s in source.secrets:
                    conn.execute(_ADD_KEY, (source.name, s.key, s.created_at, s.expires_at))

        self._with(work)  # not retried: after a lost commit the retry would find the name taken

    def get_source(self, name: str) -> WebhookSource | None:
        def work(conn: psycopg.Connection[Any]) -> WebhookSource | None:
            row = conn.execute(f"{_SOURCES} WHERE name = %s", (name,)).fetchone()
            if row is None:
                return None
            secrets = conn.execute(f"{_SECRETS} WHERE source = %s ORDER BY created_at", (name,)).fetchall()
            return _source(row, secrets)

        return self._with(work, retry=True)

    def list_sources(self) -> list[WebhookSource]:
        def work(conn: psycopg.Connection[Any]) -> list[WebhookSource]:
            rows = conn.execute(f"{_SOURCES} ORDER BY name").fetchall()
            secrets = conn.execute(f"{_SECRETS} ORDER BY created_at").fetchall()
            return [_source(row, [s for s in secrets if s[0] == row[0]]) for row in rows]

        return self._with(work, retry=True)

    def add_secret(
        self, name: str, secret: WebhookSecret, *, others_expire_at: datetime
    ) -> WebhookSource | None:
        def work(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                if (
                    conn.execute(
                        "SELECT 1 FROM webhook_sources WHERE name = %s FOR UPDATE", (name,)
                    ).fetchone()
                    is None
                ):
                    return False
                conn.execute(
                    "UPDATE webhook_secrets SET expires_at = %s"
                    " WHERE source = %s AND (expires_at IS NULL OR expires_at > %s)",
                    (others_expire_at, name, others_expire_at),
                )
                conn.execute(_ADD_KEY, (name, secret.key, secret.created_at, secret.expires_at))
                return True

        return self.get_source(name) if self._with(work) else None

    def retire_source(self, name: str, *, at: datetime) -> WebhookSource | None:
        self._with(
            lambda conn: conn.execute(
                "UPDATE webhook_sources SET retired_at = coalesce(retired_at, %s) WHERE name = %s", (at, name)
            ),
            retry=True,
        )
        return self.get_source(name)

    def begin_delivery(self, source: str, webhook_id: str, *, body_sha256: bytes, at: datetime) -> Delivery:
        def work(conn: psycopg.Connection[Any]) -> Delivery:
            # Two statements, each its own snapshot: after waiting on a concurrent insert of the same
            # id, the select sees that row (one statement with a CTE would not).
            conn.execute(
                "INSERT INTO webhook_deliveries (source, webhook_id, body_sha256, received_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (source, webhook_id) DO NOTHING",
                (source, webhook_id, body_sha256, at),
            )
            row = conn.execute(
                "SELECT received_at, body_sha256, accepted FROM webhook_deliveries"
                " WHERE source = %s AND webhook_id = %s",
                (source, webhook_id),
            ).fetchone()
            assert row is not None, "a delivery row vanished between insert and select"
            received_at, digest, accepted = row
            return Delivery(
                received_at=received_at,
                body_sha256=bytes(digest),
                accepted=Accepted.model_validate(accepted) if accepted is not None else None,
            )

        return self._with(work, retry=True)  # idempotent: first sight wins

    def finish_delivery(self, source: str, webhook_id: str, accepted: Accepted) -> None:
        self._with(
            lambda conn: conn.execute(
                "UPDATE webhook_deliveries SET accepted = %s WHERE source = %s AND webhook_id = %s",
                (Jsonb(accepted.model_dump(mode="json")), source, webhook_id),
            ),
            retry=True,
        )

    def prune_deliveries(self, *, before: datetime) -> int:
        return self._with(
            lambda conn: (
                conn.execute("DELETE FROM webhook_deliveries WHERE received_at < %s", (before,)).rowcount
            ),
            retry=True,
        )

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _with(self, work: Callable[[psycopg.Connection[Any]], T], *, retry: bool = False) -> T:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self._connect()
                    return work(self._conn)
                except psycopg.OperationalError as exc:  # connection lost: reconnect once
                    self._drop()
                    if not retry or attempt == 2:
                        raise WebhookStoreUnavailable(f"webhook store: {exc}") from exc
                except psycopg.errors.UniqueViolation:
                    raise WebhookSourceError("that webhook source or secret exists already") from None
                except psycopg.Error as exc:
                    raise WebhookStoreUnavailable(f"webhook store: {exc}") from exc
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _source(row: tuple[Any, ...], secrets: list[tuple[Any, ...]]) -> WebhookSource:
    name, tenant, created_at, retired_at = row
    return WebhookSource(
        name=name,
        tenant=tenant,
        created_at=created_at,
        retired_at=retired_at,
        secrets=tuple(
            WebhookSecret(key=bytes(key), created_at=created, expires_at=expires)
            for _, key, created, expires in secrets
        ),
    )
