"""The embedded runtime's `GET /metrics`: the same metrics as the distributed services, from the stage
threads. Per stage, in == out + dead_lettered once idle, each stage received what the one before it
handed on, and freshness, PII, embedding tokens, query latency and the journal backlog saw the run.

The registry belongs to the test process, which other tests share: the run is read as differences
between a scrape before it and one after."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from headwater.runtime.embedded.http_app import create_app
from services.query.config import AccessSettings
from tests.e2e.conftest import RuntimeFactory
from tests.e2e.scrape import Scrape

STAGES = ("ingest", "chunker", "embedder", "graph_builder", "indexer")
POSTED = [
    {
        "tenant": "acme",
        "document_id": "contact",
        "text": "Write to jane.doe@example.com about the heron survey.",
    },
    {"tenant": "acme", "document_id": "weir", "text": "The heron nests by the weir."},
]


def _scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape.parse(response.text)


def test_the_embedded_runtime_serves_metrics_whose_counts_add_up(
    make_runtime: RuntimeFactory, postgres_url: str
) -> None:
    runtime = make_runtime()
    client = TestClient(create_app(runtime, access=AccessSettings(auth="disabled")))
    before = _scrape(client)

    for document in POSTED:
        assert client.post("/v1/documents", json=document).status_code == 202
    assert runtime.wait_idle(timeout=120)
    schema = runtime.parts.settings.database_schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the graph stage cannot store this one
        conn.execute(f'ALTER TABLE "{schema}".graph_documents RENAME TO graph_documents_moved')
    try:
        late = {"tenant": "acme", "document_id": "late", "text": "Kingfishers dive at dawn."}
        assert client.post("/v1/documents", json=late).status_code == 202
        assert runtime.wait_idle(timeout=120)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{schema}".graph_documents_moved RENAME TO graph_documents')
    for mode in ("hybrid", "dense", "sparse"):
        response = client.post("/v1/search", json={"tenant": "acme", "query": "heron", "mode": mode})
        assert response.status_code == 200 and response.json()["hits"], mode

    after = _scrape(client)
    run = after.minus(before)
    books = {stage: run.books(stage) for stage in STAGES}
    print("\nstage books:", books)
    for stage, counts in books.items():
        assert counts["rewound"] == 0, stage  # the embedded runtime never hands a batch back
        assert counts["in"] == counts["out"] + counts["dead_lettered"], (stage, counts)
    for stage, upstream in zip(STAGES[1:], STAGES, strict=False):
        assert books[stage]["in"] == books[upstream]["emitted"] == books[upstream]["out"], stage
    assert books["ingest"]["in"] == len(POSTED) + 1
    assert books["graph_builder"]["dead_lettered"] == 1
    assert books["indexer"]["out"] == len(POSTED)
    assert run.value("headwater_intake_total", outcome="accepted") == len(POSTED) + 1
    assert run.value("headwater_freshness_seconds_count", source="api") == len(POSTED)
    assert run.value("headwater_pii_entities_total", type="EMAIL_ADDRESS") >= 1
    assert run.value("headwater_embedding_tokens_total") > 0
    for mode in ("hybrid", "dense", "sparse"):
        assert run.value("headwater_query_seconds_count", mode=mode, outcome="ok") == 1, mode
    assert after.value("headwater_journal_backlog_messages") == 0
