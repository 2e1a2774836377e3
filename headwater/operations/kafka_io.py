"""The aiokafka I/O the operator commands share; client errors become `OperationError`s here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    KafkaError,
    NotCoordinatorForGroupError,
    for_code,
)

from headwater.config import KafkaSettings
from headwater.operations.errors import GroupActive, KafkaOperationFailed, TopicMissing
from headwater.operations.records import Outgoing

__all__ = [
    "Committed",
    "GroupState",
    "committed_offsets",
    "describe_group",
    "kafka_errors",
    "log_bounds",
    "offsets_at",
    "open_admin",
    "open_committer",
    "open_consumer",
    "open_producer",
    "publish",
    "read_ranges",
    "topic_partitions",
]

CLIENT_ID = "headwater-ops"
# The coordinator of a group answers these while it starts or moves; they clear within seconds.
_COORDINATOR_SETTLING = (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)

Commit = Callable[[dict[int, tuple[int, str]]], Awaitable[None]]


@contextmanager
def kafka_errors(doing: str) -> Iterator[None]:
    """Translate client errors so callers and the CLI see one error family."""
    try:
        yield
    except KafkaError as exc:
        raise KafkaOperationFailed(f"{doing}: {exc!r}") from exc


@asynccontextmanager
async def open_admin(settings: KafkaSettings) -> AsyncIterator[Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=CLIENT_ID)
    with kafka_errors(f"connecting to {settings.bootstrap_servers}"):
        await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def open_consumer(settings: KafkaSettings, *, group_id: str | None = None) -> AsyncIterator[Any]:
    """A consumer for manual assignment; it never commits unless asked and skips aborted transactions."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=CLIENT_ID,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    with kafka_errors(f"connecting to {settings.bootstrap_servers}"):
        await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@asynccontextmanager
async def open_producer(settings: KafkaSettings) -> AsyncIterator[Any]:
    """An idempotent producer: a retried send never lands twice."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, client_id=CLIENT_ID, enable_idempotence=True
    )
    with kafka_errors(f"connecting to {settings.bootstrap_servers}"):
        await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@dataclass(frozen=True)
class GroupState:
    group: str
    state: str  # Kafka's word: Empty, Dead (never used), Stable, PreparingRebalance, ...
    members: int

    @property
    def active(self) -> bool:
        return self.members > 0


async def describe_group(admin: Any, group: str, *, timeout_s: float = 30.0) -> GroupState:
    """The group's state and member count, once its coordinator has loaded the group's offsets.

    Callers describe a group before reading its committed offsets: aiokafka 0.14 ignores OffsetFetch's
    top-level COORDINATOR_LOAD_IN_PROGRESS and would report "no offsets" right after a broker restart,
    whereas DescribeGroups reports the load per group.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with kafka_errors(f"describing group {group}"):
                responses = await admin.describe_consumer_groups([group])
            found = responses[0].to_object()["groups"][0]
            if found["error_code"] == 0:
                return GroupState(group, str(found["state"]), len(found["members"]))
            error: BaseException = for_code(found["error_code"])()
        except KafkaOperationFailed as exc:
            error = exc.__cause__ if exc.__cause__ is not None else exc
        if not isinstance(error, _COORDINATOR_SETTLING) or time.monotonic() > deadline:
            raise KafkaOperationFailed(f"describing group {group}: {error!r}") from error
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Committed:
    offset: int | None  # the next offset the group reads; None when it never committed
    metadata: str = ""


async def committed_offsets(
    admin: Any, group: str, topic: str, partitions: Sequence[int]
) -> dict[int, Committed]:
    """The group's committed offset (and commit metadata) for each partition of `topic`."""
    await describe_group(admin, group)  # waits out a loading coordinator, see there
    wanted = [TopicPartition(topic, p) for p in partitions]
    with kafka_errors(f"reading the offsets of group {group}"):
        found = await admin.list_consumer_group_offsets(group, partitions=wanted) if wanted else {}
    result = {p: Committed(None) for p in partitions}
    for tp, meta in found.items():
        if tp.topic == topic and tp.partition in result:
            result[tp.partition] = Committed(
                None if meta.offset < 0 else int(meta.offset), meta.metadata or ""
            )
    return result


async def topic_partitions(admin: Any, topic: str) -> list[int]:
    """The partitions of an existing topic; a missing topic is an error, never created."""
    with kafka_errors(f"reading the metadata of {topic}"):
        # Listing first: the admin client's metadata request for a named topic lets a broker with
        # auto.create.topics.enable create it, and a mistyped prefix must not create topics.
        if topic not in await admin.list_topics():
            raise TopicMissing(
                f"topic {topic} does not exist; provision the topics (`headwater stack up`) "
                "or check HEADWATER_KAFKA_TOPIC_PREFIX"
            )
        described = await admin.describe_topics([topic])
    return sorted(int(p["partition"]) for p in described[0]["partitions"])


async def log_bounds(
    consumer: Any, topic: str, partitions: Sequence[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Log start and log end offset of each partition (end = the next offset to be written)."""
    tps = [TopicPartition(topic, p) for p in partitions]
    with kafka_errors(f"reading the offsets of {topic}"):
        beginning = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    return (
        {tp.partition: int(offset) for tp, offset in beginning.items()},
        {tp.partition: int(offset) for tp, offset in end.items()},
    )


async def offsets_at(
    consumer: Any, topic: str, partitions: Sequence[int], millis: int
) -> dict[int, int | None]:
    """First offset of each partition whose timestamp is ≥ `millis`; None where no record is that new."""
    with kafka_errors(f"looking up offsets by time in {topic}"):
        found = await consumer.offsets_for_times({TopicPartition(topic, p): millis for p in partitions})
    return {tp.partition: None if hit is None else int(hit.offset) for tp, hit in found.items()}


async def read_ranges(
    consumer: Any, topic: str, ranges: dict[int, tuple[int, int]], *, stall_s: float = 30.0
) -> AsyncIterator[Any]:
    """Every record with start ≤ offset < end per partition, in offset order within a partition.

    The ends are fixed before reading, so records appended meanwhile (the ones a replay or a redrive
    publishes) are never read back.
    """
    ends = {TopicPartition(topic, p): end for p, (start, end) in ranges.items() if start < end}
    if not ends:
        return
    consumer.assign(list(ends))
    for tp in ends:
        consumer.seek(tp, ranges[tp.partition][0])
    active = dict(ends)
    last_progress = time.monotonic()
    while active:
        with kafka_errors(f"reading {topic}"):
            batches = await consumer.getmany(*active, timeout_ms=500)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record
        with kafka_errors(f"reading {topic}"):
            for tp in list(active):
                # Compaction and transaction markers leave gaps, so the position decides, not a count.
                if await consumer.position(tp) >= active[tp]:
                    del active[tp]
        if batches:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            stuck = ", ".join(f"{tp.partition}" for tp in active)
            raise KafkaOperationFailed(
                f"reading {topic} made no progress for {stall_s:.0f} s (partitions {stuck})"
            )


@asynccontextmanager
async def open_committer(
    settings: KafkaSettings, group: str, topic: str, partitions: Sequence[int]
) -> AsyncIterator[Commit]:
    """A function that commits `{partition: (offset, metadata)}` for `group` without joining it.

    Kafka accepts such commits only while the group has no live members, and refuses them otherwise.
    """
    tps = [TopicPartition(topic, p) for p in partitions]
    async with open_consumer(settings, group_id=group) as consumer:
        consumer.assign(tps)
        consumer.pause(*tps)  # it only commits; nothing to fetch

        async def commit(offsets: dict[int, tuple[int, str]]) -> None:
            try:
                with kafka_errors(f"committing offsets of group {group}"):
                    await consumer.commit(
                        {TopicPartition(topic, p): (offset, meta) for p, (offset, meta) in offsets.items()}
                    )
            except KafkaOperationFailed as exc:
                if isinstance(exc.__cause__, CommitFailedError):
                    raise GroupActive(
                        f"Kafka refused to commit offsets for group {group}: it has live members"
                    ) from exc
                raise

        yield commit


async def publish(producer: Any, records: Sequence[Outgoing]) -> list[BaseException | None]:
    """Send every record and wait for the acknowledgements; one entry per record, None if acknowledged."""
    pending: list[asyncio.Future[Any] | BaseException] = []
    for record in records:
        try:
            pending.append(
                await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
            )
        except KafkaError as exc:  # refused before sending (too large, unknown topic): reported per record
            pending.append(exc)
    results: list[BaseException | None] = []
    for item in pending:
        if isinstance(item, BaseException):
            results.append(item)
            continue
        try:
            await item
            results.append(None)
        except KafkaError as exc:
            results.append(exc)
    return results
