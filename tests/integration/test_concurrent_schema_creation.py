"""Services starting together each create the tables they use: `CREATE … IF NOT EXISTS` of one table at
the same moment can fail in Postgres's catalog, so every store's DDL serialises on one lock."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from headwater.kernel.postgres import connect
from headwater.runtime.embedded.journal import Journal
from services.embedder.adapters.cache import PostgresEmbeddingCache
from services.graph_builder.adapters.postgres import PostgresGraphStore
from services.indexer.migration.store import MigrationStore
from services.ingest.adapters.cdc_rows_postgres import PostgresRowTracker
from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore
from services.query.adapters.keys_postgres import PostgresKeyStore

PROCESSES = 6


def _every_store(connect_db: Callable[[], Any]) -> None:
    PostgresGraphStore(connect_db()).ensure_schema()
    MigrationStore(connect_db).ensure_schema()
    PostgresKeyStore(connect_db).ensure_schema()
    PostgresWebhookStore(connect_db).ensure_schema()
    PostgresRowTracker(connect_db).ensure_schema()
    PostgresEmbeddingCache(conn_factory=connect_db).ensure_schema()
    Journal(connect_db).close()


def _start_together(postgres_url: str, schema: str) -> list[BaseException]:
    start = threading.Barrier(PROCESSES)
    errors: list[BaseException] = []

    def process() -> None:
        try:
            start.wait()
            _every_store(lambda: connect(postgres_url, schema=schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=process) for _ in range(PROCESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_stores_created_by_several_processes_at_once_do_not_collide(postgres_url: str) -> None:
    for _ in range(3):  # a fresh schema each round: the race is on the first creation
        assert _start_together(postgres_url, f"ddl_{uuid.uuid4().hex[:10]}") == []
