"""The stage consumer's delivery guarantees on a real broker (reliability test plan rows 5, 6, 19):
poison records are dead-lettered whole and the partition flows on; a failing record is never skipped
by a later success; a downstream outage leaves the batch uncommitted; auto-commit is really off.

The stage handler here is a small stand-in for redaction (the real one needs spaCy and proves
nothing more about delivery); Kafka, FastStream and aiokafka are the real ones."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from faststream.kafka import KafkaBroker as FastStreamBroker

from headwater.config import KafkaSettings
from headwater.runtime.batches import BatchRetryPolicy
from headwater.runtime.distributed import codec
from headwater.runtime.distributed.consumer import StageConsumer
from headwater.stack.kafka import KafkaBroker
from schemas import DeadLetter, DocumentChanged, DocumentRedacted
from schemas.topics import DOCUMENTS, DOCUMENTS_REDACTED, dead_letter_topic
from tests.builders import document_changed, para
from tests.kafka_support import drain, fresh_topics
from tests.waiting import eventually


def _change(document_id: str, *, title: str = "ok", version: int = 1) -> DocumentChanged:
    return document_changed(
        para(f"body of {document_id}"), document_id=document_id, version=version, title=title
    )


class StandInRedactor:
    """Fails permanently on title 'poison'; fails transiently while `outage` is set."""

    def __init__(self) -> None:
        self.outage = False
        self.calls = 0

    def __call__(self, events: list[DocumentChanged]) -> list[DocumentRedacted]:
        self.calls += 1
        if self.outage:
            raise TimeoutError("downstream unavailable")
        if any(e.title == "poison" for e in events):
            raise ValueError("cannot redact this document")
        return [DocumentRedacted.model_validate(e.model_dump(exclude={"kind"})) for e in events]


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        meta = offsets.get(TopicPartition(topic, 0))
        return int(meta.offset) if meta is not None else -1
    finally:
        await admin.close()


async def _with_stage(
    kafka_broker: KafkaBroker,
    handler: StandInRedactor,
    body: Callable[[KafkaSettings, AIOKafkaProducer, StageConsumer], Awaitable[None]],
    *,
    max_redeliveries: int = 3,
) -> None:
    kafka = await fresh_topics(
        kafka_broker.bootstrap_servers,
        partitions=1,
        max_batch=8,
        batch_timeout_ms=100,
        pause_s=0.2,
        max_redeliveries=max_redeliveries,
    )
    broker = FastStreamBroker(kafka.bootstrap_servers, enable_idempotence=True, graceful_timeout=10)
    consumer = StageConsumer(
        stage="ingest",
        handler=handler,
        kafka=kafka,
        policy=BatchRetryPolicy(transient=(TimeoutError,), max_attempts=2, backoff_s=0.01),
    )
    consumer.register(broker)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    await broker.start()
    try:
        await body(kafka, producer, consumer)
    finally:
        consumer.stop()
        await broker.stop()
        await producer.stop()


async def _send(producer: AIOKafkaProducer, topic: str, event: DocumentChanged | bytes | None) -> None:
    key, value = codec.encode(event) if isinstance(event, DocumentChanged) else (b"acme/raw", event)
    await producer.send_and_wait(topic, value, key=key, headers=[("trace", b"t-1"), ("bin", b"\xff\xfe")])


def test_poison_records_are_dead_lettered_whole_and_the_partition_flows_on(kafka_broker: KafkaBroker) -> None:
    handler = StandInRedactor()

    async def body(kafka: KafkaSettings, producer: AIOKafkaProducer, consumer: StageConsumer) -> None:
        source = kafka.topic(DOCUMENTS.name)
        await _send(producer, source, _change("before"))
        await _send(producer, source, b"{not json")  # undecodable
        await _send(producer, source, None)  # a tombstone: deletes are events, not nulls
        await _send(producer, source, _change("bad", title="poison"))  # the handler rejects it
        await _send(producer, source, _change("after"))  # row 5: k fails, k+1 succeeds
        outputs = await drain(kafka.bootstrap_servers, kafka.topic(DOCUMENTS_REDACTED.name), 2)
        letters = await drain(kafka.bootstrap_servers, kafka.topic(dead_letter_topic("ingest").name), 3)
        assert sorted(DocumentRedacted.model_validate_json(r.value).document_id for r in outputs) == [
            "after",
            "before",
        ]
        parsed = [DeadLetter.model_validate_json(r.value) for r in letters]
        assert [letter.source_offset for letter in parsed] == [1, 2, 3]
        assert base64.b64decode(parsed[0].payload_base64) == b"{not json"
        assert parsed[0].error_type == "PoisonMessage"
        assert parsed[1].payload_base64 == ""
        assert parsed[2].error_type == "ValueError"
        assert "cannot redact" in parsed[2].reason
        assert parsed[2].headers["trace"] == "t-1"
        assert (
            DocumentChanged.model_validate_json(base64.b64decode(parsed[2].payload_base64)).title == "poison"
        )
        assert all(dict(r.headers)[codec.STAGE] == b"ingest" for r in letters)

        async def all_committed() -> bool:
            return await _committed(kafka.bootstrap_servers, kafka.group("ingest"), source) == 5

        await eventually(all_committed, timeout_s=10, interval_s=0.2)
        assert await _committed(kafka.bootstrap_servers, kafka.group("ingest"), source) == 5

    asyncio.run(_with_stage(kafka_broker, handler, body))


def test_an_outage_leaves_the_batch_uncommitted_until_the_downstream_returns(
    kafka_broker: KafkaBroker,
) -> None:
    handler = StandInRedactor()
    handler.outage = True

    async def body(kafka: KafkaSettings, producer: AIOKafkaProducer, consumer: StageConsumer) -> None:
        source = kafka.topic(DOCUMENTS.name)
        for i in range(3):
            await _send(producer, source, _change(f"d{i}"))
        await asyncio.sleep(1.5)  # several failed rounds, each rewound and paused
        assert handler.calls >= 2
        assert await _committed(kafka.bootstrap_servers, kafka.group("ingest"), source) <= 0
        letters = await drain(
            kafka.bootstrap_servers, kafka.topic(dead_letter_topic("ingest").name), 1, timeout_s=2
        )
        assert letters == []  # an outage is not the messages' fault
        handler.outage = False
        outputs = await drain(kafka.bootstrap_servers, kafka.topic(DOCUMENTS_REDACTED.name), 3)
        assert sorted(DocumentRedacted.model_validate_json(r.value).document_id for r in outputs) == [
            "d0",
            "d1",
            "d2",
        ]

    asyncio.run(_with_stage(kafka_broker, handler, body, max_redeliveries=1000))


def test_auto_commit_is_off_in_the_consumer_faststream_builds(kafka_broker: KafkaBroker) -> None:
    """Row 6 / FastStream #2610: the effective client config, not the one we meant to set."""

    async def body(kafka: KafkaSettings, producer: AIOKafkaProducer, consumer: StageConsumer) -> None:
        subscriber = consumer._broker.subscribers[0]
        client = getattr(subscriber, "consumer", None)
        assert client is not None
        assert client._enable_auto_commit is False

    asyncio.run(_with_stage(kafka_broker, StandInRedactor(), body))
