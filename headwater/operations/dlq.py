"""`headwater dlq list|show|redrive`: inspect dead letters and send them back to their stage.

A redrive republishes a letter's original bytes, key and headers to the topic it came from, with
`headwater-redrive-of: <dlq topic>:<partition>:<offset>`, and the stage processes it again.

No letter is redriven twice by accident. The consumer group `<group prefix>.dlq-redrive.<stage>`
records the progress per dead-letter partition, committed only after the republished record is
acknowledged:
- its committed offset: every letter below it is handled;
- its commit metadata: the letters above that offset that a filtered or explicit redrive already
  sent (for example `headwater-redriven:14,17-19`).
So a filtered redrive never skips past the letters it left alone, and a later unfiltered one does
not send again what the filtered one sent. `--again` sends already redriven letters once more on
purpose. A crash between the acknowledgement and the commit can send one chunk twice, which the
idempotent stages absorb.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from headwater.config import KafkaSettings
from headwater.operations import kafka_io
from headwater.operations.errors import GroupActive, LetterNotFound, RedriveRefused
from headwater.operations.names import dlq_topic, input_topic, redrive_group
from headwater.operations.records import DocumentRef, Outgoing, Position, Scope, document_of, with_header
from schemas.dead_letters import DeadLetter

__all__ = [
    "MAX_PROGRESS_METADATA",
    "REDRIVE_HEADER",
    "Action",
    "Decision",
    "Letter",
    "LetterFilter",
    "ListedLetter",
    "RedriveProgress",
    "RedriveReport",
    "decide",
    "list_letters",
    "parse_letter",
    "plan_progress",
    "redrive",
    "redrive_record",
    "scan_ranges",
    "show_letter",
]

REDRIVE_HEADER = "headwater-redrive-of"
# Kafka keeps at most offset.metadata.max.bytes (default 4096) of metadata per committed offset.
MAX_PROGRESS_METADATA = 4000
_METADATA_PREFIX = "headwater-redriven:"
_REDRIVE_CHUNK = 200


@dataclass(frozen=True)
class Letter:
    """One record of a dead-letter topic, parsed if it is a `DeadLetter`."""

    stage: str
    topic: str
    position: Position
    timestamp_ms: int
    key: bytes | None  # the original record's key
    letter: DeadLetter | None
    problem: str | None = None  # why the record is not a readable DeadLetter

    @property
    def payload(self) -> bytes | None:
        """The original record's value, byte for byte."""
        if self.letter is None:
            return None
        try:
            return base64.b64decode(self.letter.payload_base64, validate=True)
        except (binascii.Error, ValueError):
            return None

    @property
    def document(self) -> DocumentRef | None:
        key = self.key
        if key is None and self.letter is not None and self.letter.key:
            key = self.letter.key.encode()
        return document_of(key, self.payload)

    @property
    def address(self) -> str:
        return f"{self.topic}:{self.position}"


def parse_letter(
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
) -> Letter:
    """Read a dead-letter record; a record that is not a DeadLetter is kept, with the reason."""
    position = Position(partition, offset)
    try:
        body = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None
    if not isinstance(body, dict):
        return Letter(stage, topic, position, timestamp_ms, key, None, "not a JSON object")
    # A tolerant reader: fields added to the contract later must not make older tools refuse letters.
    known = {name: item for name, item in body.items() if name in DeadLetter.model_fields}
    try:
        letter = DeadLetter.model_validate(known)
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(map(str, error["loc"])) for error in exc.errors()}))
        return Letter(stage, topic, position, timestamp_ms, key, None, f"not a DeadLetter (bad {fields})")
    return Letter(stage, topic, position, timestamp_ms, key, letter)


@dataclass(frozen=True)
class LetterFilter:
    """Which letters a command is about; empty means all of them."""

    error_type: str | None = None
    scope: Scope = field(default_factory=Scope)
    positions: frozenset[Position] = frozenset()

    @property
    def is_everything(self) -> bool:
        return self.error_type is None and self.scope.is_everything and not self.positions

    def matches(self, letter: Letter) -> bool:
        if self.positions and letter.position not in self.positions:
            return False
        if self.error_type is not None and (
            letter.letter is None or letter.letter.error_type != self.error_type
        ):
            return False
        return self.scope.matches(letter.document)


@dataclass(frozen=True)
class RedriveProgress:
    """What one dead-letter partition's redrive group has handled."""

    next_offset: int = 0  # every letter below it is handled
    redriven: frozenset[int] = frozenset()  # handled letters at or above next_offset

    @classmethod
    def decode(cls, offset: int | None, metadata: str) -> RedriveProgress:
        """From a committed offset and its metadata (`headwater-redriven:14,17-19`)."""
        offsets: set[int] = set()
        if metadata:
            if not metadata.startswith(_METADATA_PREFIX):
                raise RedriveRefused(
                    f"the redrive group's commit metadata {metadata[:60]!r} was not written here"
                )
            for part in filter(None, metadata.removeprefix(_METADATA_PREFIX).split(",")):
                first, _, last = part.partition("-")
                try:
                    offsets.update(range(int(first), int(last or first) + 1))
                except ValueError:
                    raise RedriveRefused(f"unreadable redrive progress {metadata[:60]!r}") from None
        return cls(0 if offset is None else offset).advanced(offsets)

    def encode(self) -> str:
        if not self.redriven:
            return ""
        runs: list[str] = []
        ordered = sorted(self.redriven)
        start = previous = ordered[0]
        for offset in [*ordered[1:], None]:
            if offset is not None and offset == previous + 1:
                previous = offset
                continue
            runs.append(str(start) if start == previous else f"{start}-{previous}")
            if offset is not None:
                start = previous = offset
        return _METADATA_PREFIX + ",".join(runs)

    def includes(self, offset: int) -> bool:
        return offset < self.next_offset or offset in self.redriven

    def advanced(self, handled: Iterable[int]) -> RedriveProgress:
        """With `handled` added; the offset moves up over every contiguous handled letter."""
        done = set(self.redriven) | {o for o in handled if o >= self.next_offset}
        next_offset = self.next_offset
        while next_offset in done:
            done.remove(next_offset)
            next_offset += 1
        return RedriveProgress(next_offset, frozenset(done))


class Action(StrEnum):
    REDRIVE = "redrive"
    ALREADY_REDRIVEN = "already redriven"
    FILTERED_OUT = "filtered out"
    UNREDRIVABLE = "unredrivable"


@dataclass(frozen=True)
class Decision:
    letter: Letter
    action: Action
    why: str = ""


def decide(
    letter: Letter, *, progress: RedriveProgress, selection: LetterFilter, again: bool, target_topic: str
) -> Decision:
    """What a redrive does with one letter."""
    if not selection.matches(letter):
        return Decision(letter, Action.FILTERED_OUT)
    if progress.includes(letter.position.offset) and not again:
        return Decision(letter, Action.ALREADY_REDRIVEN)
    if letter.letter is None:
        return Decision(letter, Action.UNREDRIVABLE, letter.problem or "unreadable")
    if letter.letter.source_topic != target_topic:
        # Never write to a topic named by data: a letter of this stage comes from this stage's input.
        return Decision(
            letter, Action.UNREDRIVABLE, f"source topic {letter.letter.source_topic} is not {target_topic}"
        )
    if letter.payload is None:
        return Decision(letter, Action.UNREDRIVABLE, "payload_base64 is not base64")
    return Decision(letter, Action.REDRIVE)


def handled_offsets(decisions: Iterable[Decision], *, selection: LetterFilter) -> dict[int, list[int]]:
    """Letters a run records as handled, per partition, if every republish is acknowledged.

    An unfiltered run also moves past the letters that can never be redriven (reported, and still
    readable with `dlq show`); a filtered run leaves everything it did not send for later.
    """
    handled: dict[int, list[int]] = {}
    for decision in decisions:
        if decision.action is Action.REDRIVE or (
            decision.action is Action.UNREDRIVABLE and selection.is_everything
        ):
            handled.setdefault(decision.letter.position.partition, []).append(decision.letter.position.offset)
    return handled


def plan_progress(
    progress: dict[int, RedriveProgress], handled: dict[int, list[int]]
) -> dict[int, RedriveProgress]:
    """The progress after a run that succeeds; refused when it would not fit the commit metadata."""
    planned = {p: progress.get(p, RedriveProgress()).advanced(offsets) for p, offsets in handled.items()}
    for partition, after in planned.items():
        size = len(after.encode().encode())
        if size > MAX_PROGRESS_METADATA:
            raise RedriveRefused(
                f"partition {partition}: recording which scattered letters were redriven needs {size} bytes "
                f"of commit metadata (at most {MAX_PROGRESS_METADATA}); redrive without filters, or first "
                "redrive the letters before them"
            )
    return planned


def scan_ranges(
    *,
    progress: dict[int, RedriveProgress],
    beginning: dict[int, int],
    end: dict[int, int],
    selection: LetterFilter,
    again: bool,
) -> dict[int, tuple[int, int]]:
    """Which offsets of each dead-letter partition a redrive reads."""
    if selection.positions:
        ranges: dict[int, tuple[int, int]] = {}
        for position in sorted(selection.positions):
            first, last = beginning.get(position.partition), end.get(position.partition)
            if first is None or last is None or not first <= position.offset < last:
                raise LetterNotFound(f"no dead letter at {position}")
            start, stop = ranges.get(position.partition, (position.offset, position.offset + 1))
            ranges[position.partition] = (min(start, position.offset), max(stop, position.offset + 1))
        return ranges
    return {
        p: (first if again else max(first, progress.get(p, RedriveProgress()).next_offset), end[p])
        for p, first in beginning.items()
    }


def redrive_record(letter: Letter) -> Outgoing:
    """The original record again, marked with the letter it was redriven from."""
    if letter.letter is None or letter.payload is None:
        raise RedriveRefused(f"letter {letter.position} is unreadable: {letter.problem}")
    key = (
        letter.key if letter.key is not None else (letter.letter.key.encode() if letter.letter.key else None)
    )
    headers = [(name, value.encode()) for name, value in letter.letter.headers.items()]
    return Outgoing(
        letter.letter.source_topic, key, letter.payload, with_header(headers, REDRIVE_HEADER, letter.address)
    )


@dataclass(frozen=True)
class ListedLetter:
    letter: Letter
    handled: bool  # the redrive group has recorded it
    unredrivable: str | None = None  # why no redrive can send it

    @property
    def status(self) -> str:
        if self.handled:
            return "passed over" if self.unredrivable else "redriven"
        return "cannot redrive" if self.unredrivable else "pending"


def _listed(letter: Letter, progress: RedriveProgress, target_topic: str) -> ListedLetter:
    verdict = decide(
        letter, progress=RedriveProgress(), selection=LetterFilter(), again=True, target_topic=target_topic
    )
    why = verdict.why if verdict.action is Action.UNREDRIVABLE else None
    return ListedLetter(letter, progress.includes(letter.position.offset), why)


@dataclass
class RedriveReport:
    stage: str
    topic: str
    group: str
    applied: bool
    decisions: list[Decision]
    redriven: list[Position] = field(default_factory=list)
    failed: list[tuple[Position, str]] = field(default_factory=list)

    def count(self, action: Action) -> int:
        return sum(1 for decision in self.decisions if decision.action is action)


async def _read_letters(
    consumer: Any, stage: str, topic: str, ranges: dict[int, tuple[int, int]]
) -> list[Letter]:
    return [
        parse_letter(
            stage=stage,
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
        )
        async for record in kafka_io.read_ranges(consumer, topic, ranges)
    ]


async def _progress(
    admin: Any, settings: KafkaSettings, stage: str, topic: str, partitions: Sequence[int]
) -> dict[int, RedriveProgress]:
    committed = await kafka_io.committed_offsets(admin, redrive_group(settings, stage), topic, partitions)
    return {p: RedriveProgress.decode(c.offset, c.metadata) for p, c in committed.items()}


async def list_letters(
    settings: KafkaSettings, *, stages: Sequence[str], selection: LetterFilter | None = None
) -> list[ListedLetter]:
    """Every letter of the stages' dead-letter topics that matches, with whether it was redriven."""
    listed: list[ListedLetter] = []
    async with kafka_io.open_admin(settings) as admin, kafka_io.open_consumer(settings) as consumer:
        for stage in stages:
            topic = dlq_topic(settings, stage)
            partitions = await kafka_io.topic_partitions(admin, topic)
            progress = await _progress(admin, settings, stage, topic, partitions)
            beginning, end = await kafka_io.log_bounds(consumer, topic, partitions)
            ranges = {p: (beginning[p], end[p]) for p in partitions}
            target = input_topic(settings, stage)
            for letter in await _read_letters(consumer, stage, topic, ranges):
                if selection is None or selection.matches(letter):
                    listed.append(_listed(letter, progress[letter.position.partition], target))
    return listed


async def show_letter(settings: KafkaSettings, *, stage: str, position: Position) -> ListedLetter:
    """The letter at one position."""
    only = LetterFilter(positions=frozenset({position}))
    async with kafka_io.open_admin(settings) as admin, kafka_io.open_consumer(settings) as consumer:
        topic = dlq_topic(settings, stage)
        partitions = await kafka_io.topic_partitions(admin, topic)
        beginning, end = await kafka_io.log_bounds(consumer, topic, partitions)
        ranges = scan_ranges(progress={}, beginning=beginning, end=end, selection=only, again=True)
        found = [
            letter for letter in await _read_letters(consumer, stage, topic, ranges) if only.matches(letter)
        ]
        if not found:
            raise LetterNotFound(f"no dead letter at {position} of {topic}")
        progress = await _progress(admin, settings, stage, topic, partitions)
    return _listed(found[0], progress[position.partition], input_topic(settings, stage))


async def redrive(
    settings: KafkaSettings,
    *,
    stage: str,
    selection: LetterFilter | None = None,
    again: bool = False,
    dry_run: bool = False,
) -> RedriveReport:
    """Republish the stage's matching dead letters that were not redriven yet, recording each one."""
    selection = selection or LetterFilter()
    topic, group, target = (
        dlq_topic(settings, stage),
        redrive_group(settings, stage),
        input_topic(settings, stage),
    )
    async with kafka_io.open_admin(settings) as admin, kafka_io.open_consumer(settings) as consumer:
        partitions = await kafka_io.topic_partitions(admin, topic)
        state = await kafka_io.describe_group(admin, group)
        if state.active:
            raise GroupActive(
                f"group {group} has {state.members} live member(s); it is reserved for redrives"
            )
        progress = await _progress(admin, settings, stage, topic, partitions)
        beginning, end = await kafka_io.log_bounds(consumer, topic, partitions)
        ranges = scan_ranges(
            progress=progress, beginning=beginning, end=end, selection=selection, again=again
        )
        letters = await _read_letters(consumer, stage, topic, ranges)
    missing = selection.positions - {letter.position for letter in letters}
    if missing:
        raise LetterNotFound(f"no dead letter at {', '.join(map(str, sorted(missing)))} of {topic}")
    decisions = [
        decide(
            letter,
            progress=progress[letter.position.partition],
            selection=selection,
            again=again,
            target_topic=target,
        )
        for letter in letters
    ]
    # Refuses a run whose progress could not be recorded, before anything is sent.
    plan_progress(progress, handled_offsets(decisions, selection=selection))
    report = RedriveReport(stage, topic, group, applied=not dry_run, decisions=decisions)
    if dry_run:
        return report
    async with (
        kafka_io.open_producer(settings) as producer,
        kafka_io.open_committer(settings, group, topic, partitions) as commit,
    ):
        for start in range(0, len(decisions), _REDRIVE_CHUNK):
            chunk = decisions[start : start + _REDRIVE_CHUNK]
            sending = [d for d in chunk if d.action is Action.REDRIVE]
            results = await kafka_io.publish(producer, [redrive_record(d.letter) for d in sending])
            acknowledged = [d for d, error in zip(sending, results, strict=True) if error is None]
            report.redriven.extend(d.letter.position for d in acknowledged)
            report.failed.extend(
                (d.letter.position, repr(error)) for d, error in zip(sending, results, strict=True) if error
            )
            passed = [d for d in chunk if d.action is not Action.REDRIVE] + acknowledged
            handled = handled_offsets(passed, selection=selection)
            if handled:
                progress = {**progress, **plan_progress(progress, handled)}
                await commit({p: (progress[p].next_offset, progress[p].encode()) for p in handled})
            if report.failed:  # later letters of the same documents must not overtake the failed ones
                break
    return report
