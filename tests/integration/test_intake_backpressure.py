"""Intake over Kafka answers 202 only once the broker has the change, and 503 + Retry-After when the
broker cannot acknowledge it in time; after the broker returns, intake accepts again (row 8/9)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker as FastStreamBroker

from headwater.kernel.problems import install_problem_handlers
from headwater.runtime.distributed.change_log import KafkaChangeLog
from headwater.stack.kafka import KafkaBroker
from services.ingest.errors import IngestError
from services.ingest.routes import router as intake_router
from services.ingest.service import IntakeService
from tests.kafka_support import fresh_topics


@pytest.fixture
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def test_intake_refuses_with_503_while_the_broker_is_down_and_accepts_after(
    tmp_path: Path, event_loop_thread: asyncio.AbstractEventLoop
) -> None:
    broker = KafkaBroker()  # its own broker: this test stops it
    broker.fetch_jars()
    broker.start(tmp_path / "kafka")
    try:
        kafka = asyncio.run(fresh_topics(broker.bootstrap_servers, partitions=1, send_timeout_s=3))
        producer = FastStreamBroker(kafka.bootstrap_servers, enable_idempotence=True)
        asyncio.run_coroutine_threadsafe(producer.start(), event_loop_thread).result(timeout=60)
        app = FastAPI()
        install_problem_handlers(app, domain_errors=(IngestError,))
        app.state.intake = IntakeService(changes=KafkaChangeLog(producer, event_loop_thread, kafka))
        app.include_router(intake_router)
        client = TestClient(app)

        def post(document_id: str) -> Any:
            return client.post(
                "/v1/documents", json={"tenant": "acme", "document_id": document_id, "text": "x y z"}
            )

        assert post("before").status_code == 202

        port = broker.port
        broker.stop()
        refused = post("during")
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"].startswith("application/problem+json")

        broker.start(tmp_path / "kafka", port=port)
        accepted = None
        for _ in range(20):  # the producer reconnects on its own
            accepted = post("after")
            if accepted.status_code == 202:
                break
        assert accepted is not None
        assert accepted.status_code == 202
        asyncio.run_coroutine_threadsafe(producer.stop(), event_loop_thread).result(timeout=60)
    finally:
        broker.stop()
