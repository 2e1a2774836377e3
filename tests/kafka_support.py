"""Kafka for tests on a real broker: topics of a test's own, and records written and read with plain
aiokafka clients."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord  # type: ignore[import-untyped]

from headwater.config import KafkaSettings
from headwater.operations.records import Position
from headwater.stack.topics import provision_topics

Records = list[ConsumerRecord[bytes, bytes]]


async def fresh_topics(bootstrap_servers: str, *, partitions: int, **settings: Any) -> KafkaSettings:
    """Settings whose topic and group prefixes are this test's alone, the pipeline's topics created."""
    run = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=f"t{run}.", group_prefix=f"g{run}", **settings
    )
    await provision_topics(bootstrap_servers, partitions=partitions, prefix=kafka.topic_prefix)
    return kafka


async def produce(bootstrap_servers: str, topic: str, records: Iterable[Mapping[str, Any]]) -> list[Position]:
    """Send each record (`send_and_wait`'s keywords: value, key, partition, headers...) and wait for it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        positions = []
        for record in records:
            sent = await producer.send_and_wait(topic, **record)
            positions.append(Position(sent.partition, sent.offset))
        return positions
    finally:
        await producer.stop()


async def read_records(
    bootstrap_servers: str, topic: str, *, until: Callable[[Records], bool], timeout_s: float = 60.0
) -> Records:
    """The records of `topic` from its start, read until `until(records)` holds or `timeout_s` passes:
    what was read by then, for the caller to judge."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: Records = []
    try:
        deadline = time.monotonic() + timeout_s
        while not until(records) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def drain(bootstrap_servers: str, topic: str, count: int, *, timeout_s: float = 60.0) -> Records:
    """The first `count` records of `topic`, or fewer if no more come within `timeout_s`."""
    return await read_records(bootstrap_servers, topic, until=lambda r: len(r) >= count, timeout_s=timeout_s)
