"""`headwater lag`: per consumer group and partition, how far the committed offset trails the log end."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from headwater.config import KafkaSettings
from headwater.operations import kafka_io
from headwater.operations.errors import TopicMissing
from headwater.operations.names import (
    MIGRATE_GROUP_INFIX,
    REDRIVE_GROUP_INFIX,
    dlq_topic,
    input_topic,
    stage_group,
)
from schemas.topics import STAGES

__all__ = ["GroupLag", "PartitionLag", "known_topics_of", "measure_lag"]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here and starts where its reset policy says
    log_start: int
    log_end: int

    @property
    def lag(self) -> int:
        """Records the group has yet to read; without a commit, every record still in the log."""
        position = self.log_start if self.committed is None else max(self.committed, self.log_start)
        return max(0, self.log_end - position)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "lag": self.lag,
        }


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str
    members: int
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "lag": self.total,
            "partitions": [p.as_dict() for p in self.partitions],
        }


def known_topics_of(settings: KafkaSettings, group: str) -> list[str] | None:
    """The topic a Headwater group consumes (a stage's input, a redrive's dead letters); None if unknown."""
    for stage in STAGES:
        if group == stage_group(settings, stage):
            return [input_topic(settings, stage)]
        if group == settings.group(f"{REDRIVE_GROUP_INFIX}.{stage}"):
            return [dlq_topic(settings, stage)]
    if group.startswith(
        settings.group(f"{MIGRATE_GROUP_INFIX}.")
    ):  # a model migration re-reads the index's input
        return [input_topic(settings, "indexer")]
    return None


async def measure_lag(settings: KafkaSettings, groups: Sequence[str] | None = None) -> list[GroupLag]:
    """Lag of each group (default: every stage's group) on every partition of the topics it consumes."""
    wanted = list(groups) if groups else [stage_group(settings, stage) for stage in STAGES]
    async with kafka_io.open_admin(settings) as admin, kafka_io.open_consumer(settings) as consumer:
        return [await _group_lag(settings, admin, consumer, group) for group in wanted]


async def _group_lag(settings: KafkaSettings, admin: Any, consumer: Any, group: str) -> GroupLag:
    state = await kafka_io.describe_group(admin, group)
    topics = known_topics_of(settings, group)
    if topics is None:  # someone else's group: whatever it has committed offsets for
        with kafka_io.kafka_errors(f"reading the offsets of group {group}"):
            committed = await admin.list_consumer_group_offsets(group)
        topics = sorted({tp.topic for tp in committed})
    rows: list[PartitionLag] = []
    for topic in topics:
        rows.extend(await _topic_lag(admin, consumer, group, topic))
    return GroupLag(group, state.state, state.members, tuple(rows))


async def _topic_lag(admin: Any, consumer: Any, group: str, topic: str) -> Iterable[PartitionLag]:
    try:
        partitions = await kafka_io.topic_partitions(admin, topic)
    except TopicMissing:
        return []  # a group can outlive its topic; nothing to lag behind
    committed = await kafka_io.committed_offsets(admin, group, topic, partitions)
    starts, ends = await kafka_io.log_bounds(consumer, topic, partitions)
    return [PartitionLag(topic, p, committed[p].offset, starts[p], ends[p]) for p in partitions]
