"""A CDC source for tests: one database with its own publication, slot, topic prefix and connector,
configured from the project's own connector file (infra/connectors/headwater-postgres.json)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from headwater.stack.connectors import ConnectClient, change_topics, connector_files, ensure_change_topics
from headwater.stack.postgres import REPLICATION_ROLE, CdcPostgres
from tests.kafka_support import Records, read_records

CONNECTORS = Path(__file__).resolve().parents[1] / "infra" / "connectors"
ARTICLES = """
CREATE TABLE articles (
    id      int PRIMARY KEY,
    tenant  text NOT NULL,
    title   text,
    body    text,
    tags    text[]
);
"""


@dataclass
class CdcSource:
    postgres: CdcPostgres
    name: str  # database, publication, slot and connector share it

    @property
    def url(self) -> str:
        return self.postgres.url(database=self.name)

    @property
    def prefix(self) -> str:
        return f"{self.name}-cdc"

    def topic(self, table: str = "public.articles") -> str:
        return f"{self.prefix}.{table}"

    def execute(self, sql: str, params: tuple[Any, ...] | None = None) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql, params)

    def config(self, *, tables: str = "public.articles", **overrides: str) -> dict[str, str]:
        (file,) = connector_files(CONNECTORS, names=["headwater-postgres"])
        env = {
            "HEADWATER_CDC_DATABASE_PORT": str(self.postgres.port),
            "HEADWATER_CDC_DATABASE_NAME": self.name,
            "HEADWATER_CDC_TOPIC_PREFIX": self.prefix,
            "HEADWATER_CDC_TABLES": tables,
            "HEADWATER_CDC_SLOT": self.name,
            "HEADWATER_CDC_PUBLICATION": self.name,
        }
        return {**file.render(env), **overrides}

    def replication_slots(self) -> dict[str, bool]:
        """Slot name -> active, for the slots of this source's database."""
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", (self.name,)
            ).fetchall()
        return {name: active for name, active in rows}

    def drop_slot(self, *, timeout_s: float = 60.0) -> None:
        """Drop the connector's slot once the stopped connector has let go of it (a slot left behind keeps
        WAL forever: the step the runbook asks for after deleting a connector)."""
        deadline = time.monotonic() + timeout_s
        while self.replication_slots().get(self.name) and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.name in self.replication_slots():
            with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (self.name,))


def new_source(postgres: CdcPostgres, *, ddl: str = ARTICLES, tables: str = "articles") -> CdcSource:
    """A fresh database with `ddl`, readable by the replication role, published for CDC."""
    source = CdcSource(postgres, f"s{uuid.uuid4().hex[:10]}")
    postgres.create_database(source.name)
    source.execute(ddl)
    source.execute(f"GRANT SELECT ON {tables} TO {REPLICATION_ROLE}")
    source.execute(f"CREATE PUBLICATION {source.name} FOR TABLE {tables}")
    return source


@contextmanager
def running_connector(
    client: ConnectClient, source: CdcSource, bootstrap_servers: str, config: dict[str, str]
) -> Iterator[None]:
    """Create the change topics, apply the connector, wait until it runs; delete it afterwards."""
    asyncio.run(ensure_change_topics(bootstrap_servers, change_topics(config)))
    client.apply(source.name, config)
    client.wait_running(source.name, timeout_s=180)
    try:
        yield
    finally:
        client.delete(source.name)
        source.drop_slot()


def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    until: Callable[[Records], bool],
    timeout_s: float = 120.0,
) -> Records:
    """Every record of `topic` from the start, read until `until(records)` holds."""
    records = asyncio.run(read_records(bootstrap_servers, topic, until=until, timeout_s=timeout_s))
    if not until(records):
        raise AssertionError(f"{topic}: condition not met after {timeout_s} s; {len(records)} records")
    return records
