"""Metrics of the shared stage code: the embedded stage worker's books balance, the embedding stage
counts only what the model embeds, freshness runs from the source timestamp, lag from the consumer's
next offset, and the HTTP route serves the registry.

Every test reads differences of the process's default registry under labels of its own (a unique stage
or model name), so the tests cannot see each other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from headwater.observability import metrics
from schemas import SourceKind, SourceRef
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.adapters.fake import HashingBackend
from services.embedder.config import EmbedderSettings
from services.embedder.handlers import EmbedStage
from services.embedder.sparse import SparseEncoder
from tests.builders import chunk_set
from tests.unit.runtime.workers import Transient, run_worker


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_embedded_stage_counts_each_message_once_as_completed_or_dead_lettered() -> None:
    stage = f"s{uuid.uuid4().hex[:8]}"
    failures = {"transient": 1}

    def process(batch: list[int]) -> list[int]:
        if failures["transient"]:
            failures["transient"] -= 1
            raise Transient("backend restarting")
        if 3 in batch:
            raise ValueError("cannot handle 3")
        return batch

    run_worker(process, [1, 2, 3, 4], name=stage)

    def counter(name: str) -> float:
        return _value(f"headwater_stage_messages_{name}_total", stage=stage)

    assert counter("in") == 4
    assert (counter("out"), counter("dead_lettered"), counter("rewound")) == (3, 1, 0)
    assert counter("in") == counter("out") + counter("dead_lettered")
    assert _value("headwater_stage_messages_failed_total", stage=stage, kind="transient") == 4  # the batch
    # The batch of four failed, then 3 alone: the others passed alone.
    assert _value("headwater_stage_messages_failed_total", stage=stage, kind="permanent") == 5
    assert _value("headwater_stage_retries_total", stage=stage) == 1
    assert _value("headwater_stage_batch_size_count", stage=stage) >= 1
    assert _value("headwater_stage_batch_size_sum", stage=stage) == 4
    assert _value("headwater_stage_batch_seconds_count", stage=stage) >= 1
    assert _value("headwater_stage_in_flight_messages", stage=stage) == 0


def test_embedding_tokens_count_what_the_model_embeds_and_not_cache_hits() -> None:
    model = f"hashing-{uuid.uuid4().hex[:8]}"
    embed = EmbedStage(
        backend=HashingBackend(model_id=model),
        cache=InMemoryEmbeddingCache(),
        sparse=SparseEncoder(),
        settings=EmbedderSettings(),
    )
    first = chunk_set("a", ["one two three", "four five"])  # 3 + 2 tokens
    embed([first])
    assert _value("headwater_embedding_tokens_total", model=model) == 5
    assert _value("headwater_embedding_texts_total", model=model) == 2
    embed([first, chunk_set("b", ["four five", "six"])])  # only "six" is new
    assert _value("headwater_embedding_tokens_total", model=model) == 6
    assert _value("headwater_embedding_texts_total", model=model) == 3


def test_freshness_runs_from_the_source_timestamp_by_source_kind() -> None:
    kind = SourceKind.CDC
    before = _value("headwater_freshness_seconds_count", source=kind.value)
    below_budget = _value("headwater_freshness_seconds_bucket", source=kind.value, le="2.0")
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    events = [
        SimpleNamespace(occurred_at=now - timedelta(seconds=1), source=SourceRef(kind=kind)),
        SimpleNamespace(occurred_at=now - timedelta(seconds=40), source=SourceRef(kind=kind)),
    ]
    metrics.observe_freshness(events, now=now)
    assert _value("headwater_freshness_seconds_count", source=kind.value) == before + 2
    assert _value("headwater_freshness_seconds_bucket", source=kind.value, le="2.0") == below_budget + 1


class _Consumer:
    def __init__(self, highwater: dict[tuple[str, int], int]) -> None:
        self._highwater = highwater

    def highwater(self, tp: Any) -> int | None:
        return self._highwater.get((tp.topic, tp.partition))


def test_lag_is_the_highwater_minus_the_next_offset_after_a_commit_or_a_rewind() -> None:
    stage, topic = f"s{uuid.uuid4().hex[:8]}", "t.documents"
    records = [SimpleNamespace(topic=topic, partition=p, offset=o) for p, o in [(0, 5), (0, 6), (1, 2)]]
    consumer = _Consumer({(topic, 0): 10, (topic, 1): 3})

    def lag(partition: int) -> float | None:
        return REGISTRY.get_sample_value(
            "headwater_consumer_lag_messages", {"stage": stage, "topic": topic, "partition": str(partition)}
        )

    metrics.observe_consumer_lag(stage, consumer, records, committed=True)
    assert (lag(0), lag(1)) == (3, 0)  # 10 - 7, 3 - 3
    metrics.observe_consumer_lag(stage, consumer, records, committed=False)
    assert (lag(0), lag(1)) == (5, 1)  # rewound to offsets 5 and 2
    metrics.observe_consumer_lag(stage, object(), records, committed=True)  # no highwater: unchanged
    assert lag(0) == 5


def test_pii_counts_by_entity_type() -> None:
    entity = f"TEST_{uuid.uuid4().hex[:6].upper()}"
    metrics.count_pii({entity: 2, "EMPTY_" + entity: 0})
    metrics.count_pii({entity: 1})
    assert _value("headwater_pii_entities_total", type=entity) == 3
    assert REGISTRY.get_sample_value("headwater_pii_entities_total", {"type": "EMPTY_" + entity}) is None


def test_the_metrics_route_serves_the_registry_after_refreshing_read_gauges() -> None:
    app = FastAPI()
    refreshed: list[bool] = []
    metrics.install_metrics_route(app, before_scrape=lambda: refreshed.append(True))
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE headwater_stage_messages_in_total counter" in response.text
    assert refreshed == [True]
