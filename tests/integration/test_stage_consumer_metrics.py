"""The stage consumer's metrics on a real broker: every received record is counted once as completed,
dead-lettered or rewound; outputs are counted as emitted; an outage shows as pauses and rewinds; the
lag gauge falls to zero once the partition is consumed.

Values are read from the process's default registry as differences, since the stage label ("ingest")
is shared with the other consumer tests of this process."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from prometheus_client import REGISTRY

from headwater.config import KafkaSettings
from headwater.runtime.distributed.consumer import StageConsumer
from headwater.stack.kafka import KafkaBroker
from schemas.topics import DOCUMENTS, DOCUMENTS_REDACTED
from tests.integration.test_stage_consumer import StandInRedactor, _change, _send, _with_stage
from tests.kafka_support import drain
from tests.waiting import eventually

STAGE = "ingest"
COUNTERS = ("in", "out", "dead_lettered", "rewound")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"stage": STAGE, **labels}) or 0.0


def _counts() -> dict[str, float]:
    found = {c: _value(f"headwater_stage_messages_{c}_total") for c in COUNTERS}
    found["emitted"] = _value("headwater_stage_events_emitted_total")
    found["transient"] = _value("headwater_stage_messages_failed_total", kind="transient")
    found["permanent"] = _value("headwater_stage_messages_failed_total", kind="permanent")
    found["batches"] = _value("headwater_stage_batch_size_count")
    found["paused"] = _value("headwater_backpressure_pauses_total", reason="downstream_unavailable")
    return found


def _delta(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in _counts().items()}


def test_each_record_is_counted_once_as_completed_or_dead_lettered(kafka_broker: KafkaBroker) -> None:
    handler = StandInRedactor()
    before = _counts()

    async def body(kafka: KafkaSettings, producer: AIOKafkaProducer, consumer: StageConsumer) -> None:
        source = kafka.topic(DOCUMENTS.name)
        await _send(producer, source, _change("before"))
        await _send(producer, source, b"{not json")  # undecodable: dead-lettered before the handler
        await _send(producer, source, _change("bad", title="poison"))  # the handler rejects it
        await _send(producer, source, _change("after"))
        await drain(kafka.bootstrap_servers, kafka.topic(DOCUMENTS_REDACTED.name), 2)
        await eventually(lambda: _delta(before)["out"] + _delta(before)["dead_lettered"] >= 4)
        lag = REGISTRY.get_sample_value(
            "headwater_consumer_lag_messages", {"stage": STAGE, "topic": source, "partition": "0"}
        )
        assert lag == 0

    asyncio.run(_with_stage(kafka_broker, handler, body))
    delta = _delta(before)
    assert delta["in"] == 4
    assert (delta["out"], delta["dead_lettered"], delta["rewound"]) == (2, 2, 0)
    assert delta["in"] == delta["out"] + delta["dead_lettered"] + delta["rewound"]
    assert delta["emitted"] == 2  # one redacted document per completed change
    # The poison document failed (with its batch, then alone); the undecodable never reached the handler.
    assert delta["permanent"] >= 1 and delta["transient"] == 0
    assert delta["batches"] >= 1


def test_an_outage_is_counted_as_pauses_and_rewinds_and_the_books_still_balance(
    kafka_broker: KafkaBroker,
) -> None:
    handler = StandInRedactor()
    handler.outage = True
    before = _counts()

    async def body(kafka: KafkaSettings, producer: AIOKafkaProducer, consumer: StageConsumer) -> None:
        source = kafka.topic(DOCUMENTS.name)
        for i in range(3):
            await _send(producer, source, _change(f"d{i}"))
        await eventually(lambda: _delta(before)["paused"] >= 2)
        during = _delta(before)
        assert during["out"] == 0 and during["rewound"] >= 3  # whole batches handed back
        assert during["transient"] >= 3
        handler.outage = False
        await drain(kafka.bootstrap_servers, kafka.topic(DOCUMENTS_REDACTED.name), 3)
        await eventually(lambda: _delta(before)["out"] >= 3)

    asyncio.run(_with_stage(kafka_broker, handler, body, max_redeliveries=1000))
    delta = _delta(before)
    assert delta["out"] == 3 and delta["dead_lettered"] == 0
    assert delta["in"] == delta["out"] + delta["dead_lettered"] + delta["rewound"]
    assert delta["in"] > 3  # the rewound records were received again
    assert delta["emitted"] == 3
