"""Replays and duplicates are harmless (test plan rows 18, 20) and a dead letter can be redriven once
its cause is fixed (row 19), all on the real pipeline and with the operator commands users run."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]

from headwater.stack.pipeline import LocalPipeline
from schemas.topics import CHUNKS_ENRICHED, DOCUMENTS
from tests.e2e.distributed.audit import snapshot
from tests.e2e.distributed.conftest import post_document, search, wait_for

TENANTS = ("acme", "globex")


def _index_contents(pipeline: LocalPipeline) -> dict[str, dict[str, object]]:
    """Every point and payload, read with the index node stopped; it is started again afterwards."""
    pipeline.kill("index-node", signal.SIGTERM)
    points = snapshot(pipeline.home / "index", "headwater_chunks", TENANTS)
    pipeline.start("index-node")
    pipeline.wait_http("index-node")
    return points


async def _republish_everything(bootstrap: str, topic: str) -> int:
    """Append a copy of every record of `topic` (old versions included) to the end of the topic."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        records = []
        while batch := await consumer.getmany(timeout_ms=2000):
            for part in batch.values():
                records.extend(part)
        for record in records:
            await producer.send(topic, record.value, key=record.key, headers=list(record.headers))
        await producer.flush()
        return len(records)
    finally:
        await consumer.stop()
        await producer.stop()


def _drained(pipeline: LocalPipeline) -> None:
    wait_for(lambda: pipeline.lag() == 0, timeout_s=240, what="every stage to catch up")


def test_old_events_and_whole_topic_replays_leave_the_index_unchanged(
    make_pipeline: Callable[..., LocalPipeline],
) -> None:
    pipeline = make_pipeline()
    pipeline.start_all()

    def post(i: int, change: dict[str, object]) -> None:
        body = {"tenant": TENANTS[i % 2], "document_id": f"d{i}", **change}
        assert post_document(pipeline, body).status_code == 202

    for i in range(24):
        post(i, {"version": 1, "text": f"First draft {i} of the plan."})
    for i in range(0, 24, 3):
        post(i, {"version": 2, "text": f"Second draft {i}, revised."})
    for i in range(1, 24, 4):
        post(i, {"version": 3, "op": "delete"})
    _drained(pipeline)
    before = _index_contents(pipeline)
    assert len(before) > 24

    # Old versions re-published at the head of the pipeline and straight into the indexer's input.
    bootstrap = pipeline.bootstrap_servers
    republished = asyncio.run(_republish_everything(bootstrap, pipeline.topic_prefix + DOCUMENTS.name))
    republished += asyncio.run(_republish_everything(bootstrap, pipeline.topic_prefix + CHUNKS_ENRICHED.name))
    _drained(pipeline)
    assert _index_contents(pipeline) == before, "re-published old events changed the index"

    # A whole-topic replay of the indexer's input, with the operator command (group stopped first).
    pipeline.kill("index-node", signal.SIGTERM)
    replay = pipeline.cli("replay", "--stage", "indexer", "--from-beginning", "--wait", "60")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    pipeline.start("index-node")
    pipeline.wait_http("index-node")
    _drained(pipeline)
    after = _index_contents(pipeline)
    print(
        f"\nreplay: {len(before)} points; {republished} old records re-published; whole-topic replay; diff=0"
    )
    assert after == before, "a whole-topic replay changed the index"


def test_a_dead_letter_is_redriven_after_its_cause_is_fixed(
    make_pipeline: Callable[..., LocalPipeline], postgres_url: str
) -> None:
    pipeline = make_pipeline()
    pipeline.start_all()
    schema = pipeline.env["HEADWATER_DATABASE_SCHEMA"]
    assert (
        post_document(
            pipeline, {"tenant": "acme", "document_id": "ok", "text": "Herons nest by the weir."}
        ).status_code
        == 202
    )
    wait_for(lambda: bool(search(pipeline, "acme", "herons weir")), what="the first document")

    # An operator mistake: the graph stage's table disappears (renamed). Not transient: dead-lettered.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema}".graph_documents RENAME TO graph_documents_moved')
    assert (
        post_document(
            pipeline, {"tenant": "acme", "document_id": "late", "text": "Kingfishers dive at dawn."}
        ).status_code
        == 202
    )

    def letters() -> str:
        listed = pipeline.cli("dlq", "list", "--stage", "graph_builder", "--json")
        assert listed.returncode == 0, listed.stderr
        return listed.stdout

    wait_for(lambda: "late" in letters(), what="the dead letter")
    assert not [h for h in search(pipeline, "acme", "kingfishers dawn") if h["document_id"] == "late"]

    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the cause is fixed
        conn.execute(f'ALTER TABLE "{schema}".graph_documents_moved RENAME TO graph_documents')
    redrive = pipeline.cli("dlq", "redrive", "--stage", "graph_builder")
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    wait_for(
        lambda: any(h["document_id"] == "late" for h in search(pipeline, "acme", "kingfishers dawn")),
        what="the redriven document to become searchable",
    )
    again = pipeline.cli("dlq", "redrive", "--stage", "graph_builder", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["redriven"] == []  # once only
