"""The local Kafka stack: topics as code, keyed delivery with manual commit, durability across restarts."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # type: ignore[import-untyped]

from headwater.stack.kafka import KafkaBroker
from headwater.stack.topics import DLQ_RETENTION_MS, provision_topics, wanted_topics
from schemas.common import partition_key
from schemas.topics import DOCUMENTS, PIPELINE, STAGES, dead_letter_topic

pytestmark = pytest.mark.integration


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


async def _topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        responses = await admin.describe_configs(resources)
        found: dict[str, dict[str, str]] = {}
        for response in responses:
            for error_code, _message, _type, name, entries in response.resources:
                assert error_code == 0, name
                found[name] = {entry[0]: entry[1] for entry in entries}
        return found
    finally:
        await admin.close()


async def _partition_count(bootstrap: str, name: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return len(await producer.partitions_for(name))
    finally:
        await producer.stop()


def test_provisioning_creates_compacted_pipeline_and_retained_dead_letter_topics(
    kafka_broker: KafkaBroker,
) -> None:
    bootstrap, prefix = kafka_broker.bootstrap_servers, _prefix()
    names = [prefix + topic.name for topic in wanted_topics()]

    first = asyncio.run(provision_topics(bootstrap, partitions=3, replication_factor=1, prefix=prefix))
    assert sorted(first.created) == sorted(names)
    assert first.existing == []

    configs = asyncio.run(_topic_configs(bootstrap, names))
    for topic in PIPELINE:
        assert configs[prefix + topic.name]["cleanup.policy"] == "compact"
    for stage in STAGES:
        dlq = configs[prefix + dead_letter_topic(stage).name]
        assert dlq["cleanup.policy"] == "delete"
        assert dlq["retention.ms"] == str(DLQ_RETENTION_MS)
    assert asyncio.run(_partition_count(bootstrap, prefix + DOCUMENTS.name)) == 3

    again = asyncio.run(provision_topics(bootstrap, partitions=3, replication_factor=1, prefix=prefix))
    assert again.created == []
    assert sorted(again.existing) == sorted(names)


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        metadata = await producer.send_and_wait(topic, value=value, key=key)
        return int(metadata.partition)
    finally:
        await producer.stop()


async def _consume_one_and_commit(bootstrap: str, topic: str, group: str) -> tuple[bytes, bytes, int, int]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        tp = TopicPartition(record.topic, record.partition)
        await consumer.commit({tp: record.offset + 1})  # the committed offset is the next one to read
        return record.key, record.value, record.partition, int(await consumer.committed(tp))
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, topic: str, partition: int, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(topic, partition))
        return None if committed is None else int(committed)
    finally:
        await consumer.stop()


def test_keyed_message_is_consumed_with_its_key_and_committed_explicitly(kafka_broker: KafkaBroker) -> None:
    bootstrap, prefix = kafka_broker.bootstrap_servers, _prefix()
    asyncio.run(provision_topics(bootstrap, partitions=6, prefix=prefix))
    topic, key, group = prefix + DOCUMENTS.name, partition_key("acme", "doc-1"), f"g-{uuid.uuid4().hex}"

    partition = asyncio.run(_produce(bootstrap, topic, key, b'{"document_id": "doc-1"}'))
    got_key, got_value, got_partition, committed = asyncio.run(
        _consume_one_and_commit(bootstrap, topic, group)
    )

    assert (got_key, got_value, got_partition) == (key, b'{"document_id": "doc-1"}', partition)
    assert committed == 1
    assert asyncio.run(_committed(bootstrap, topic, partition, group)) == 1


def test_restart_on_the_same_log_dir_keeps_messages_and_committed_offsets(tmp_path: Path) -> None:
    home, group = tmp_path / "kafka", f"g-{uuid.uuid4().hex}"
    broker = KafkaBroker()
    broker.fetch_jars()
    with broker.start(home):
        bootstrap = broker.bootstrap_servers
        asyncio.run(provision_topics(bootstrap, partitions=1))
        topic = DOCUMENTS.name
        asyncio.run(_produce(bootstrap, topic, partition_key("acme", "a"), b"first"))
        assert asyncio.run(_consume_one_and_commit(bootstrap, topic, group))[3] == 1
        asyncio.run(_produce(bootstrap, topic, partition_key("acme", "b"), b"second"))

    with broker.start(home):  # new ports, same cluster id and log dir
        bootstrap = broker.bootstrap_servers
        report = asyncio.run(provision_topics(bootstrap, partitions=1))
        assert report.created == []
        # Resume through a group join, which waits for the offsets partition to load. A bare committed()
        # right after a restart can read None: aiokafka 0.14 ignores OffsetFetch's top-level
        # COORDINATOR_LOAD_IN_PROGRESS. A lost offset would replay "first" (auto_offset_reset=earliest).
        key, value, _partition, committed = asyncio.run(_consume_one_and_commit(bootstrap, topic, group))
        assert (key, value, committed) == (partition_key("acme", "b"), b"second", 2)
        assert asyncio.run(_committed(bootstrap, topic, 0, group)) == 2


def test_a_cluster_id_that_starts_with_a_dash_still_formats(tmp_path: Path) -> None:
    # Random URL-safe ids start with "-" one time in 64; the storage tool once took that for an option.
    (tmp_path / "cluster.id").write_text("-" + uuid.uuid4().hex[:21])
    with KafkaBroker().start(tmp_path) as broker:
        assert broker.bootstrap_servers
