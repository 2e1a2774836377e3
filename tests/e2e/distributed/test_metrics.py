"""Every service's `/metrics` after an end-to-end run: per stage, every message received is completed,
dead-lettered or rewound (in == out + dead_lettered + rewound), each stage received what the one
before it emitted, and the end-to-end metrics (freshness, query latency, PII, embedding tokens, lag)
saw the run. One change is dead-lettered by the graph stage (its table is renamed away) and one
undecodable record by ingest.

The index node runs indexer and query in one process over the embedded engine; the separate `indexer`
and `query` services need a Qdrant server, which the tests do not have: they are started against an
unreachable one, which is enough to show that they serve their metrics and count a failed search."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import psycopg
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from headwater.stack.kafka import free_port
from headwater.stack.pipeline import LocalPipeline
from schemas.topics import DOCUMENTS
from tests.e2e.distributed.conftest import post_document, search, wait_for
from tests.e2e.scrape import Scrape

# (service, stage it consumes for), in pipeline order
CONSUMERS = (
    ("ingest", "ingest"),
    ("chunker", "chunker"),
    ("embedder", "embedder"),
    ("graph-builder", "graph_builder"),
    ("index-node", "indexer"),
)
DOCUMENTS_POSTED = [
    {
        "tenant": "acme",
        "document_id": "contact",
        "text": "Write to jane.doe@example.com about the heron survey.",
    },
    {"tenant": "acme", "document_id": "weir", "text": "The heron nests by the weir."},
    {"tenant": "acme", "document_id": "otters", "text": "Otters hunt below the mill race."},
]
LATE = {"tenant": "acme", "document_id": "late", "text": "Kingfishers dive at dawn."}


def _scrape(pipeline: LocalPipeline, service: str) -> Scrape:
    response = httpx.get(pipeline.metrics_url(service), timeout=10)
    response.raise_for_status()
    return Scrape.parse(response.text)


def _answers(pipeline: LocalPipeline, service: str) -> bool:
    try:
        return httpx.get(pipeline.metrics_url(service), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _publish_undecodable(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{not json", key=b"acme/broken")
    finally:
        await producer.stop()


def _balanced(scrapes: dict[str, Scrape]) -> bool:
    """Every stage idle with its books closed, and each stage received what the previous one emitted."""
    previous_emitted = None
    for service, stage in CONSUMERS:
        books = scrapes[service].books(stage)
        if books["in"] != books["out"] + books["dead_lettered"] + books["rewound"]:
            return False
        if previous_emitted is not None and books["in"] - books["rewound"] != previous_emitted:
            return False
        previous_emitted = books["emitted"]
    return True


def test_every_service_serves_metrics_and_the_counts_add_up(
    make_pipeline: Callable[..., LocalPipeline], postgres_url: str
) -> None:
    pipeline = make_pipeline()
    pipeline.start_all()
    schema = pipeline.env["HEADWATER_DATABASE_SCHEMA"]

    for document in DOCUMENTS_POSTED:
        assert post_document(pipeline, document).status_code == 202
    wanted = {d["document_id"] for d in DOCUMENTS_POSTED}
    wait_for(
        lambda: (
            wanted <= {h["document_id"] for h in search(pipeline, "acme", "heron weir otters mill survey")}
        ),
        what="the documents to be searchable",
    )

    # A change the graph stage cannot store (its table renamed away: not transient) is dead-lettered.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema}".graph_documents RENAME TO graph_documents_moved')
    try:
        assert post_document(pipeline, LATE).status_code == 202
        wait_for(
            lambda: _scrape(pipeline, "graph-builder").books("graph_builder")["dead_lettered"] == 1,
            what="the graph stage to dead-letter the late change",
        )
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{schema}".graph_documents_moved RENAME TO graph_documents')
    asyncio.run(_publish_undecodable(pipeline.bootstrap_servers, pipeline.topic_prefix + DOCUMENTS.name))

    wait_for(lambda: pipeline.lag() == 0, timeout_s=180, what="every stage to commit everything")
    wait_for(
        lambda: _balanced({service: _scrape(pipeline, service) for service, _ in CONSUMERS}),
        what="the books of every stage to close",
    )

    before = _scrape(pipeline, "index-node")
    for mode in ("hybrid", "dense", "sparse"):
        assert search(pipeline, "acme", "heron", mode=mode), mode
    queries = _scrape(pipeline, "index-node").minus(before)
    for mode in ("hybrid", "dense", "sparse"):
        assert queries.value("headwater_query_seconds_count", mode=mode, outcome="ok") == 1, mode

    scrapes = {service: _scrape(pipeline, service) for service, _ in CONSUMERS}
    books = {stage: scrapes[service].books(stage) for service, stage in CONSUMERS}
    print("\nstage books:", books)
    for stage, counts in books.items():
        assert counts["in"] == counts["out"] + counts["dead_lettered"] + counts["rewound"], (stage, counts)

    ingest = scrapes["ingest"]
    assert ingest.value("headwater_intake_total", outcome="accepted") == len(DOCUMENTS_POSTED) + 1
    assert books["ingest"]["in"] - books["ingest"]["rewound"] == len(DOCUMENTS_POSTED) + 2  # + undecodable
    assert (books["ingest"]["out"], books["ingest"]["dead_lettered"]) == (len(DOCUMENTS_POSTED) + 1, 1)
    for stage in ("ingest", "chunker", "embedder", "graph_builder"):  # one event per completed change
        assert books[stage]["emitted"] == books[stage]["out"], stage
    for (_, stage), (_, upstream) in zip(CONSUMERS[1:], CONSUMERS, strict=False):
        assert books[stage]["in"] - books[stage]["rewound"] == books[upstream]["emitted"], (stage, upstream)
    assert books["graph_builder"]["dead_lettered"] == 1
    assert books["indexer"]["out"] == len(DOCUMENTS_POSTED) and books["indexer"]["emitted"] == 0

    index_node = scrapes["index-node"]
    assert index_node.value("headwater_freshness_seconds_count", source="api") == len(DOCUMENTS_POSTED)
    assert index_node.value("headwater_intake_to_index_seconds_count") == len(DOCUMENTS_POSTED)
    assert ingest.value("headwater_pii_entities_total", type="EMAIL_ADDRESS") >= 1
    assert scrapes["embedder"].value("headwater_embedding_tokens_total") > 0
    for service, stage in CONSUMERS:
        scrape = scrapes[service]
        assert scrape.value("headwater_stage_batch_size_count", stage=stage) > 0, stage
        assert scrape.value("headwater_stage_batch_seconds_count", stage=stage) > 0, stage
        lags = [
            v for labels, v in scrape.series("headwater_consumer_lag_messages") if labels["stage"] == stage
        ]
        assert lags and all(v == 0 for v in lags), (stage, lags)

    for service in ("ingest", "index-node"):  # HTTP services also serve the registry on their API port
        response = httpx.get(f"{pipeline.url(service)}/metrics", timeout=10)
        assert response.status_code == 200
        assert "headwater_stage_messages_in_total" in response.text


def test_the_separate_indexer_and_query_services_serve_metrics(
    make_pipeline: Callable[..., LocalPipeline],
) -> None:
    pipeline = make_pipeline(env={"HEADWATER_QDRANT_URL": f"http://127.0.0.1:{free_port()}"})  # nobody there
    pipeline.start("indexer")
    pipeline.start("query")
    pipeline.wait_http("query")
    wait_for(lambda: _answers(pipeline, "indexer"), what="the indexer's metrics port")

    indexer = _scrape(pipeline, "indexer")
    assert ("headwater_stage_messages_in_total", frozenset({("stage", "indexer")})) in indexer.samples

    response = httpx.post(
        f"{pipeline.url('query')}/v1/search", json={"tenant": "acme", "query": "x"}, timeout=30
    )
    assert response.status_code >= 500  # the index is unreachable
    query = _scrape(pipeline, "query")
    assert query.value("headwater_query_seconds_count", mode="hybrid", outcome="error") == 1
    assert httpx.get(f"{pipeline.url('query')}/metrics", timeout=10).status_code == 200
