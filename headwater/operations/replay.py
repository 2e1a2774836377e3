"""`headwater replay`: make a stage consume part of its input topic again.

Two mechanisms, because Kafka offsets are per group and partition, not per document:
- unscoped: move the committed offsets of the stage's group (or of a fresh group) to a start point;
  Kafka refuses this while the group has live members;
- scoped to a tenant or documents: copy the matching records of a range to the end of the same
  topic, so the live group processes those again and nothing else. Every stage is idempotent, so
  processing a record twice changes nothing but the time it took.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from headwater.config import KafkaSettings
from headwater.operations import kafka_io
from headwater.operations.errors import GroupActive, InvalidRequest
from headwater.operations.names import input_topic, stage_group
from headwater.operations.records import Outgoing, Position, Scope, document_of, to_millis, with_header

__all__ = [
    "REPLAY_HEADER",
    "FromBeginning",
    "FromOffset",
    "FromTime",
    "PartitionMove",
    "ReplayFrom",
    "ReplayRequest",
    "RepublishReport",
    "ResetReport",
    "end_offsets",
    "replay",
    "replay_copy",
    "start_offsets",
]

REPLAY_HEADER = "headwater-replay-of"
_PUBLISH_BATCH = 500


@dataclass(frozen=True)
class FromBeginning:
    def __str__(self) -> str:
        return "the beginning"


@dataclass(frozen=True)
class FromOffset:
    offset: int

    def __str__(self) -> str:
        return f"offset {self.offset}"


@dataclass(frozen=True)
class FromTime:
    instant: datetime

    def __str__(self) -> str:
        return self.instant.isoformat()


ReplayFrom = FromBeginning | FromOffset | FromTime


@dataclass(frozen=True)
class ReplayRequest:
    stage: str
    start: ReplayFrom
    until: datetime | None = None  # scoped replays only: records from this instant on are left alone
    scope: Scope = field(default_factory=Scope)
    into_group: str | None = None
    partitions: tuple[int, ...] = ()  # empty: every partition
    dry_run: bool = False
    wait_s: float = 0.0  # how long an unscoped replay waits for the group to empty

    def validate(self) -> None:
        if isinstance(self.start, FromOffset) and self.start.offset < 0:
            raise InvalidRequest("--from-offset must be 0 or more")
        if self.until is not None and self.scope.is_everything:
            raise InvalidRequest(
                "--to-time bounds a replay scoped with --tenant or --document-id; "
                "a group whose offsets are moved always reads on to the end of the log"
            )
        if self.until is not None and isinstance(self.start, FromTime) and self.until <= self.start.instant:
            raise InvalidRequest("--to-time must be later than --from-time")
        if self.into_group is not None and not self.scope.is_everything:
            raise InvalidRequest(
                "--into-group positions a whole group; --tenant/--document-id republish records for the "
                "stage's live group. Use one or the other."
            )


def start_offsets(
    start: ReplayFrom,
    *,
    beginning: dict[int, int],
    end: dict[int, int],
    by_time: dict[int, int | None] | None = None,
) -> dict[int, int]:
    """Where each partition starts again, kept inside the log (a time past the last record means its end)."""
    targets: dict[int, int] = {}
    for partition, first in beginning.items():
        last = end[partition]
        match start:
            case FromBeginning():
                targets[partition] = first
            case FromOffset(offset=offset):
                targets[partition] = min(max(offset, first), last)
            case FromTime():
                found = (by_time or {}).get(partition)
                targets[partition] = last if found is None else min(max(found, first), last)
    return targets


def end_offsets(end: dict[int, int], until: dict[int, int | None] | None = None) -> dict[int, int]:
    """Exclusive end of each partition's range: the first record at or after `--to-time`, else the log end."""
    bounded = dict(end)
    for partition, first_after in (until or {}).items():
        if first_after is not None and partition in bounded:
            bounded[partition] = min(first_after, bounded[partition])
    return bounded


def replay_copy(
    topic: str,
    *,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: list[tuple[str, bytes]],
) -> Outgoing:
    """The same record again, marked with where it was copied from."""
    return Outgoing(topic, key, value, with_header(headers, REPLAY_HEADER, f"{topic}:{partition}:{offset}"))


@dataclass(frozen=True)
class PartitionMove:
    partition: int
    before: int | None
    after: int
    log_end: int

    @property
    def to_reprocess(self) -> int:
        return max(0, self.log_end - self.after)


@dataclass(frozen=True)
class ResetReport:
    """An unscoped replay: the group's offsets before and after."""

    group: str
    topic: str
    group_state: str
    group_members: int  # live members when planned; a dry run reports them, a real reset needs none
    moves: tuple[PartitionMove, ...]
    applied: bool


@dataclass
class RepublishReport:
    """A scoped replay: what was read, what matched and what was copied."""

    topic: str
    scope: Scope
    ranges: dict[int, tuple[int, int]]
    applied: bool
    scanned: int = 0
    matched: int = 0
    republished: int = 0
    tombstones: int = 0  # deletions by key carry no document body, so they are never copied
    failed: list[tuple[Position, str]] = field(default_factory=list)


async def replay(settings: KafkaSettings, request: ReplayRequest) -> ResetReport | RepublishReport:
    """Run a replay: a scoped one republishes, an unscoped one moves a group's offsets."""
    request.validate()
    if request.scope.is_everything:
        return await _reset_offsets(settings, request)
    return await _republish(settings, request)


def _selected(partitions: list[int], wanted: tuple[int, ...], topic: str) -> list[int]:
    if not wanted:
        return partitions
    unknown = sorted(set(wanted) - set(partitions))
    if unknown:
        raise InvalidRequest(f"{topic} has partitions 0–{max(partitions)}; no partition {unknown[0]}")
    return sorted(set(wanted))


async def _range_starts(
    consumer: Any, topic: str, partitions: list[int], start: ReplayFrom
) -> tuple[dict[int, int], dict[int, int]]:
    beginning, end = await kafka_io.log_bounds(consumer, topic, partitions)
    by_time = None
    if isinstance(start, FromTime):
        by_time = await kafka_io.offsets_at(consumer, topic, partitions, to_millis(start.instant))
    return start_offsets(start, beginning=beginning, end=end, by_time=by_time), end


async def _wait_until_empty(admin: Any, group: str, wait_s: float) -> kafka_io.GroupState:
    deadline = time.monotonic() + wait_s
    state = await kafka_io.describe_group(admin, group)
    while state.active and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        state = await kafka_io.describe_group(admin, group)
    return state


async def _reset_offsets(settings: KafkaSettings, request: ReplayRequest) -> ResetReport:
    topic = input_topic(settings, request.stage)
    group = request.into_group or stage_group(settings, request.stage)
    async with kafka_io.open_admin(settings) as admin, kafka_io.open_consumer(settings) as consumer:
        partitions = _selected(await kafka_io.topic_partitions(admin, topic), request.partitions, topic)
        state = await _wait_until_empty(admin, group, request.wait_s)
        if state.active and not request.dry_run:
            raise GroupActive(
                f"group {group} has {state.members} live member(s) (state {state.state}); Kafka refuses to "
                f"move the offsets of a live group. Stop the {request.stage} consumers and run again "
                "(--wait SECONDS waits for them to leave), replay one tenant or some documents with "
                "--tenant/--document-id (republishes for the live group), or start a new group with "
                "--into-group."
            )
        committed = await kafka_io.committed_offsets(admin, group, topic, partitions)
        targets, end = await _range_starts(consumer, topic, partitions, request.start)
    moves = tuple(PartitionMove(p, committed[p].offset, targets[p], end[p]) for p in partitions)
    if not request.dry_run:
        async with kafka_io.open_committer(settings, group, topic, partitions) as commit:
            await commit({move.partition: (move.after, "") for move in moves})
    return ResetReport(group, topic, state.state, state.members, moves, applied=not request.dry_run)


async def _republish(settings: KafkaSettings, request: ReplayRequest) -> RepublishReport:
    topic = input_topic(settings, request.stage)
    async with AsyncExitStack() as stack:
        admin = await stack.enter_async_context(kafka_io.open_admin(settings))
        consumer = await stack.enter_async_context(kafka_io.open_consumer(settings))
        partitions = _selected(await kafka_io.topic_partitions(admin, topic), request.partitions, topic)
        starts, log_end = await _range_starts(consumer, topic, partitions, request.start)
        until = None
        if request.until is not None:
            until = await kafka_io.offsets_at(consumer, topic, partitions, to_millis(request.until))
        ends = end_offsets(log_end, until)
        ranges = {p: (starts[p], max(starts[p], ends[p])) for p in partitions}
        report = RepublishReport(topic, request.scope, ranges, applied=not request.dry_run)
        producer = (
            None if request.dry_run else await stack.enter_async_context(kafka_io.open_producer(settings))
        )
        batch: list[tuple[Position, Outgoing]] = []
        async for record in kafka_io.read_ranges(consumer, topic, ranges):
            report.scanned += 1
            if record.value is None:
                report.tombstones += 1
                continue
            if not request.scope.matches(document_of(record.key, record.value)):
                continue
            report.matched += 1
            if producer is None:
                continue
            copy = replay_copy(
                topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=list(record.headers or ()),
            )
            batch.append((Position(record.partition, record.offset), copy))
            if len(batch) >= _PUBLISH_BATCH:
                await _flush(producer, batch, report)
        if producer is not None and batch:
            await _flush(producer, batch, report)
    return report


async def _flush(producer: Any, batch: list[tuple[Position, Outgoing]], report: RepublishReport) -> None:
    results = await kafka_io.publish(producer, [copy for _, copy in batch])
    for (position, _), error in zip(batch, results, strict=True):
        if error is None:
            report.republished += 1
        else:
            report.failed.append((position, repr(error)))
    batch.clear()
