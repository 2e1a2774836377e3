"""CDC row state on a real Postgres: the same plans as in memory, a failed batch leaves nothing behind,
and a lost connection is a retryable error that the next batch recovers from."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from headwater.kernel.postgres import connect
from schemas import ChangeOp
from services.ingest.adapters.cdc_rows_postgres import PostgresRowTracker
from services.ingest.cdc import CdcIngest
from services.ingest.cdc.logic import delete_version, upsert_version
from services.ingest.errors import CdcStateUnavailable, UnavailableValue
from tests.unit.ingest.test_cdc import MAPPINGS, PLACEHOLDER, change, tombstone, truncate


@pytest.fixture
def tracker(postgres_url: str, pg: psycopg.Connection[Any], pg_schema: str) -> PostgresRowTracker:
    rows = PostgresRowTracker(lambda: connect(postgres_url, schema=pg_schema))
    rows.ensure_schema()
    rows.ensure_schema()  # idempotent
    return rows


def test_deletes_tombstones_moves_and_truncates_resolve_from_postgres(tracker: PostgresRowTracker) -> None:
    ingest = CdcIngest(mappings=MAPPINGS, tracker=tracker)
    ingest.handle(
        [change("c", 1, lsn=100, tenant="globex"), change("c", 2, lsn=110), change("c", 3, lsn=120)]
    )
    (deleted,) = ingest.handle([change("d", 3, lsn=130)])[0]
    assert (deleted.tenant, deleted.document_id, deleted.version) == (
        "acme",
        "article-3",
        delete_version(130),
    )
    assert ingest.handle([tombstone(3)])[0][0].version == deleted.version
    moved = ingest.handle([change("u", 2, lsn=140, tenant="initech")])
    assert [(e.op, e.tenant) for e in moved[0]] == [(ChangeOp.DELETE, "acme"), (ChangeOp.UPSERT, "initech")]
    assert ingest.handle([change("u", 2, lsn=140, tenant="initech")]) == moved  # redelivered: the same
    ingest.handle([change("c", 4, lsn=900)])
    (deletes,) = ingest.handle([truncate(lsn=500)])
    assert sorted((e.tenant, e.document_id) for e in deletes) == [
        ("globex", "article-1"),
        ("initech", "article-2"),
    ]
    assert ingest.handle([truncate(lsn=500)]) == [deletes]
    late = ingest.handle([change("c", 5, lsn=450)])[0][0]
    assert (late.op, late.version) == (ChangeOp.DELETE, delete_version(500))
    assert ingest.handle([change("u", 4, lsn=950)])[0][0].version == upsert_version(950)


def test_a_failed_batch_writes_no_row_state(tracker: PostgresRowTracker) -> None:
    ingest = CdcIngest(mappings=MAPPINGS, tracker=tracker)
    with pytest.raises(UnavailableValue):
        ingest.handle([change("c", 1, lsn=100), change("u", 1, lsn=200, body=PLACEHOLDER)])
    # The create was rolled back with the batch: a tombstone finds no document to delete.
    assert ingest.handle([tombstone(1)]) == [[]]


def test_a_lost_connection_is_retryable_and_the_next_batch_reconnects(
    tracker: PostgresRowTracker, postgres_url: str
) -> None:
    ingest = CdcIngest(mappings=MAPPINGS, tracker=tracker)
    ingest.handle([change("c", 1, lsn=100)])
    backend = tracker._conn.info.backend_pid if tracker._conn else None  # the tracker's server process
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(CdcStateUnavailable):
        ingest.handle([change("u", 1, lsn=200)])
    assert ingest.handle([change("u", 1, lsn=200)])[0][0].version == upsert_version(200)
