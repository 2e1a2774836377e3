"""Operator tooling on a real broker: dead-letter redrive, scoped and unscoped replay, lag.

The stage consumers are not used here: the tests write pipeline records and dead letters exactly as
the contracts say (key = partition key, value = contract JSON; letters = `DeadLetter` JSON with the
original bytes), and check the results with plain aiokafka clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]
from typer.testing import CliRunner

from headwater.cli.ops import dlq_app, lag
from headwater.config import KafkaSettings
from headwater.operations import GroupActive
from headwater.operations.dlq import REDRIVE_HEADER, Action, LetterFilter, list_letters, redrive, show_letter
from headwater.operations.lag import measure_lag
from headwater.operations.names import dlq_topic, input_topic, redrive_group
from headwater.operations.records import Position, Scope
from headwater.operations.replay import (
    REPLAY_HEADER,
    FromBeginning,
    FromTime,
    ReplayRequest,
    RepublishReport,
    ResetReport,
    replay,
)
from headwater.stack.kafka import KafkaBroker
from schemas.common import partition_key
from schemas.dead_letters import DeadLetter
from schemas.topics import STAGES
from tests.kafka_support import fresh_topics, produce

PARTITIONS = 3


@pytest.fixture
def settings(kafka_broker: KafkaBroker) -> KafkaSettings:
    """Topics and groups of this test only."""
    return asyncio.run(fresh_topics(kafka_broker.bootstrap_servers, partitions=PARTITIONS))


def _document(tenant: str, document_id: str, **extra: object) -> bytes:
    return json.dumps({"tenant": tenant, "document_id": document_id, **extra}).encode()


async def _read_all(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every record of the topic, in (partition, offset) order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def _committed(settings: KafkaSettings, group: str, topic: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


def _headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers or ())


async def _toy_chunker(settings: KafkaSettings, *, fixed: bool) -> list[bytes]:
    """Stand-in for the chunker's consumer loop until its input is drained: it dead-letters a poison
    record as the contract says (original bytes, key and headers) unless its cause is fixed, and commits."""
    source, group = input_topic(settings, "chunker"), settings.group("chunker")
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    processed: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    if b"POISON" in record.value and not fixed:
                        letter = DeadLetter(
                            stage="chunker",
                            source_topic=source,
                            error_type="ChunkingFailed",
                            reason="the chunker cannot split this yet",
                            key=record.key.decode(),
                            payload_base64=base64.b64encode(record.value).decode(),
                            headers={k: v.decode() for k, v in record.headers},
                            source_partition=record.partition,
                            source_offset=record.offset,
                        )
                        await producer.send_and_wait(
                            dlq_topic(settings, "chunker"),
                            letter.model_dump_json().encode(),
                            key=record.key,
                            headers=[
                                ("headwater-stage", b"chunker"),
                                ("headwater-error-type", b"ChunkingFailed"),
                            ],
                        )
                    else:
                        processed.append(record.value)
                    await consumer.commit({tp: record.offset + 1})
            assigned = consumer.assignment()
            if len(assigned) == PARTITIONS:
                ends = await consumer.end_offsets(list(assigned))
                if all([await consumer.position(tp) >= ends[tp] for tp in assigned]):
                    return processed
        raise AssertionError("the toy chunker did not drain its input")
    finally:
        await producer.stop()
        await consumer.stop()


def test_a_poison_message_is_dead_lettered_then_redriven_once_after_the_fix(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        source = input_topic(settings, "chunker")
        poison = _document("acme", "bad", text="POISON")
        await produce(
            settings.bootstrap_servers,
            source,
            [
                {"key": partition_key("acme", "ok"), "value": _document("acme", "ok")},
                {"key": partition_key("acme", "bad"), "value": poison, "headers": [("trace", b"t-1")]},
            ],
        )
        assert await _toy_chunker(settings, fixed=False) == [_document("acme", "ok")]

        [listed] = await list_letters(settings, stages=["chunker"])
        assert listed.status == "pending" and listed.letter.letter is not None
        assert listed.letter.letter.error_type == "ChunkingFailed" and listed.letter.payload == poison
        shown = await show_letter(settings, stage="chunker", position=listed.letter.position)
        assert shown.letter == listed.letter

        dry = await redrive(settings, stage="chunker", dry_run=True)
        assert dry.count(Action.REDRIVE) == 1 and dry.redriven == []
        assert len(await _read_all(settings, source)) == 2  # a dry run sends nothing

        report = await redrive(settings, stage="chunker")
        assert report.redriven == [listed.letter.position] and report.failed == []
        records = await _read_all(settings, source)
        [copy] = [r for r in records if REDRIVE_HEADER in _headers(r)]
        assert (copy.key, copy.value) == (partition_key("acme", "bad"), poison)
        assert _headers(copy) == {"trace": b"t-1", REDRIVE_HEADER: listed.letter.address.encode()}

        # Cause fixed: the stage resumes from its committed offsets and processes just the redriven copy.
        assert await _toy_chunker(settings, fixed=True) == [poison]

        again = await redrive(settings, stage="chunker")
        assert again.redriven == [] and again.count(Action.REDRIVE) == 0
        assert len(await _read_all(settings, source)) == 3
        [after] = await list_letters(settings, stages=["chunker"])
        assert after.status == "redriven"

    asyncio.run(scenario())


def _letter(settings: KafkaSettings, tenant: str, document_id: str, error_type: str) -> dict[str, Any]:
    payload = _document(tenant, document_id)
    letter = DeadLetter(
        stage="embedder",
        source_topic=input_topic(settings, "embedder"),
        error_type=error_type,
        reason="failed",
        key=f"{tenant}/{document_id}",
        payload_base64=base64.b64encode(payload).decode(),
    )
    return {
        "key": partition_key(tenant, document_id),
        "value": letter.model_dump_json().encode(),
        "partition": 0,  # one partition, so offsets read as a sequence
    }


def test_filtered_and_explicit_redrives_never_send_a_letter_twice_by_accident(
    settings: KafkaSettings,
) -> None:
    async def scenario() -> None:
        letters = [
            _letter(settings, "acme", "d0", "Timeout"),
            _letter(settings, "acme", "d1", "BadVector"),
            _letter(settings, "globex", "d2", "Timeout"),
            _letter(settings, "acme", "d3", "BadVector"),
        ]
        await produce(settings.bootstrap_servers, dlq_topic(settings, "embedder"), letters)
        # Something that is not a dead letter at all also sits in the topic.
        await produce(
            settings.bootstrap_servers,
            dlq_topic(settings, "embedder"),
            [{"value": b"garbage", "partition": 0}],
        )

        first = await redrive(settings, stage="embedder", selection=LetterFilter(error_type="BadVector"))
        assert first.redriven == [Position(0, 1), Position(0, 3)]
        second = await redrive(
            settings, stage="embedder", selection=LetterFilter(scope=Scope.of(tenant="globex"))
        )
        assert second.redriven == [Position(0, 2)]
        explicit = await redrive(
            settings, stage="embedder", selection=LetterFilter(positions=frozenset({Position(0, 3)}))
        )
        assert explicit.redriven == [] and explicit.count(Action.ALREADY_REDRIVEN) == 1
        rest = await redrive(settings, stage="embedder")
        assert rest.redriven == [Position(0, 0)]
        assert [d.letter.position for d in rest.decisions if d.action is Action.UNREDRIVABLE] == [
            Position(0, 4)
        ]
        assert (await redrive(settings, stage="embedder")).redriven == []

        sent = [
            _headers(r)[REDRIVE_HEADER].decode()
            for r in await _read_all(settings, input_topic(settings, "embedder"))
        ]
        dlq = dlq_topic(settings, "embedder")
        assert sorted(sent) == [f"{dlq}:0:{offset}" for offset in range(4)]  # each letter exactly once

        on_purpose = await redrive(
            settings,
            stage="embedder",
            selection=LetterFilter(positions=frozenset({Position(0, 3)})),
            again=True,
        )
        assert on_purpose.redriven == [Position(0, 3)]
        statuses = [entry.status for entry in await list_letters(settings, stages=["embedder"])]
        assert statuses == ["redriven"] * 4 + ["passed over"]
        committed = await _committed(settings, redrive_group(settings, "embedder"), dlq)
        assert committed[0] == 5

    asyncio.run(scenario())


def test_a_replay_scoped_to_a_tenant_republishes_only_its_records_in_the_range(
    settings: KafkaSettings,
) -> None:
    async def scenario() -> None:
        topic = input_topic(settings, "embedder")
        base = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
        records = [
            {"key": partition_key(tenant, doc), "value": _document(tenant, doc), "timestamp_ms": base + ms}
            for tenant, doc, ms in [
                ("acme", "d1", 0),
                ("globex", "d1", 1000),
                ("acme", "d2", 2000),
                ("globex", "d2", 3000),
                ("acme", "d3", 4000),
            ]
        ]
        records.append({"key": partition_key("acme", "d9"), "value": None, "timestamp_ms": base + 5000})
        originals = await produce(settings.bootstrap_servers, topic, records)

        everything = await replay(
            settings, ReplayRequest(stage="embedder", start=FromBeginning(), scope=Scope.of(tenant="acme"))
        )
        assert isinstance(everything, RepublishReport)
        assert (everything.scanned, everything.matched, everything.republished, everything.tombstones) == (
            6,
            3,
            3,
            1,
        )
        copies = [r for r in await _read_all(settings, topic) if REPLAY_HEADER in _headers(r)]
        assert sorted(json.loads(r.value)["document_id"] for r in copies) == ["d1", "d2", "d3"]
        sources = {f"{topic}:{p}": p for p in originals}
        for copy in copies:
            origin = sources[_headers(copy)[REPLAY_HEADER].decode()]
            assert copy.key == records[originals.index(origin)]["key"]
            assert copy.value == records[originals.index(origin)]["value"]

        window = await replay(
            settings,
            ReplayRequest(
                stage="embedder",
                start=FromTime(datetime.fromtimestamp((base + 1000) / 1000, UTC)),
                until=datetime.fromtimestamp((base + 4000) / 1000, UTC),
                scope=Scope.of(tenant="acme"),
            ),
        )
        assert isinstance(window, RepublishReport)
        assert (window.matched, window.republished) == (1, 1)  # acme/d2 only: d1 is before, d3 at the end

        dry = await replay(
            settings,
            ReplayRequest(
                stage="embedder", start=FromBeginning(), scope=Scope.of(document_ids=["d1"]), dry_run=True
            ),
        )
        assert isinstance(dry, RepublishReport) and dry.republished == 0
        assert dry.matched == 3  # acme/d1, globex/d1 and the copy of acme/d1 made above
        assert len(await _read_all(settings, topic)) == 6 + 3 + 1

    asyncio.run(scenario())


async def _consume_all_and_commit(settings: KafkaSettings, topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.commit(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def test_a_group_reset_by_time_moves_committed_offsets_but_never_under_a_live_member(
    settings: KafkaSettings,
) -> None:
    async def scenario() -> None:
        topic, group = input_topic(settings, "chunker"), settings.group("chunker")
        base = int((datetime.now(UTC) - timedelta(days=1)).timestamp() * 1000)
        layout = {0: [0, 1000, 2000, 3000], 1: [0, 1000], 2: []}
        await produce(
            settings.bootstrap_servers,
            topic,
            [
                {
                    "key": partition_key("acme", f"{p}-{ms}"),
                    "value": b"{}",
                    "partition": p,
                    "timestamp_ms": base + ms,
                }
                for p, times in layout.items()
                for ms in times
            ],
        )
        await _consume_all_and_commit(settings, topic, group)
        assert await _committed(settings, group, topic) == {0: 4, 1: 2, 2: 0}

        live = AIOKafkaConsumer(
            topic, bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        await live.start()
        try:
            while not live.assignment():
                await live.getmany(timeout_ms=200)
            request = ReplayRequest(
                stage="chunker", start=FromTime(datetime.fromtimestamp((base + 1500) / 1000, UTC))
            )
            with pytest.raises(GroupActive, match="live member"):
                await replay(settings, request)
            planned = await replay(
                settings, ReplayRequest(stage="chunker", start=request.start, dry_run=True)
            )
            assert isinstance(planned, ResetReport) and planned.group_members == 1 and not planned.applied
            assert await _committed(settings, group, topic) == {0: 4, 1: 2, 2: 0}
        finally:
            await live.stop()

        report = await replay(settings, ReplayRequest(stage="chunker", start=request.start, wait_s=30))
        assert isinstance(report, ResetReport) and report.applied
        assert [(m.partition, m.before, m.after) for m in report.moves] == [(0, 4, 2), (1, 2, 2), (2, 0, 0)]
        assert await _committed(settings, group, topic) == {0: 2, 1: 2, 2: 0}

        fresh = settings.group("chunker-backfill")
        await replay(settings, ReplayRequest(stage="chunker", start=FromBeginning(), into_group=fresh))
        assert await _committed(settings, fresh, topic) == {0: 0, 1: 0, 2: 0}
        assert await _committed(settings, group, topic) == {
            0: 2,
            1: 2,
            2: 0,
        }  # the stage's group is untouched

    asyncio.run(scenario())


def test_lag_per_group_and_partition(settings: KafkaSettings) -> None:
    async def scenario() -> None:
        topic, group = input_topic(settings, "indexer"), settings.group("indexer")
        await produce(
            settings.bootstrap_servers,
            topic,
            [
                {"key": b"a/b", "value": b"{}", "partition": p}
                for p, count in [(0, 5), (1, 3)]
                for _ in range(count)
            ],
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            await consumer.commit({TopicPartition(topic, 0): 2})
        finally:
            await consumer.stop()

        every_stage = await measure_lag(settings)
        assert [g.group for g in every_stage] == [settings.group(stage) for stage in STAGES]
        [indexer] = [g for g in every_stage if g.group == group]
        rows = [(p.partition, p.committed, p.log_end, p.lag) for p in indexer.partitions]
        assert rows == [(0, 2, 5, 3), (1, None, 3, 3), (2, None, 0, 0)]
        assert indexer.total == 6 and indexer.state == "Empty"

        [other] = await measure_lag(settings, ["someone-else-" + uuid.uuid4().hex])
        assert other.partitions == () and other.state == "Dead"

    asyncio.run(scenario())


def test_the_cli_prints_letters_and_lag_as_json(settings: KafkaSettings) -> None:
    asyncio.run(
        produce(
            settings.bootstrap_servers,
            dlq_topic(settings, "embedder"),
            [_letter(settings, "acme", "d0", "Timeout")],
        )
    )
    app = typer.Typer()
    app.add_typer(dlq_app, name="dlq")
    app.command(name="lag")(lag)
    env = {
        "HEADWATER_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "HEADWATER_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
        "HEADWATER_KAFKA_GROUP_PREFIX": settings.group_prefix,
        "COLUMNS": "200",
    }
    runner = CliRunner()

    listed = runner.invoke(app, ["dlq", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["stage"], row["document"], row["error_type"], row["status"]) == (
        "embedder",
        "acme/d0",
        "Timeout",
        "pending",
    )

    shown = runner.invoke(app, ["dlq", "show", "embedder", "0:0"], env=env)
    assert shown.exit_code == 0 and "payload" not in json.loads(shown.stdout)  # PII stays out unless asked
    with_payload = runner.invoke(app, ["dlq", "show", "embedder", "0:0", "--payload"], env=env)
    assert json.loads(with_payload.stdout)["payload"] == {"tenant": "acme", "document_id": "d0"}

    lagged = runner.invoke(app, ["lag", "--json", "--group", redrive_group(settings, "embedder")], env=env)
    assert lagged.exit_code == 0, lagged.output
    [group] = json.loads(lagged.stdout)
    assert group["lag"] == 1  # one letter, never redriven

    missing = runner.invoke(app, ["dlq", "show", "embedder", "0:7"], env=env)
    assert missing.exit_code == 1 and "no dead letter" in missing.output
