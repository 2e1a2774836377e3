"""Change data capture end to end: rows of a real Postgres (wal_level=logical) → Debezium on a real Kafka
Connect worker → the ingest service's CDC consumer → every stage → `/v1/search`.

Inserts, updates, deletes, a primary-key change, a TOASTed body under a title-only update and a truncate
are reflected in search; a connector restart and two whole-topic replays of the CDC topic change nothing
(audited point by point at the end); an unmapped table and an un-reselected TOAST placeholder go to the
CDC dead-letter topic with their reason. Prints commit → indexed (searchable) p50/p99 over 120 inserts,
from each point's `occurred_at` (the Postgres commit time Debezium reports) and `indexed_at`.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import string
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

from headwater.config import KafkaSettings
from headwater.operations.lag import measure_lag
from headwater.stack.connect import KafkaConnect
from headwater.stack.connectors import ConnectClient
from headwater.stack.kafka import KafkaBroker
from headwater.stack.pipeline import LocalPipeline
from headwater.stack.postgres import CdcPostgres
from schemas import DeadLetter
from schemas.sources import DEBEZIUM_UNAVAILABLE_VALUE
from schemas.topics import CDC_STAGE, dead_letter_topic
from services.ingest.cdc import RowChange, decode_record
from services.ingest.cdc.logic import upsert_version
from tests.cdc_support import CdcSource, new_source, read_topic, running_connector
from tests.e2e.distributed.audit import Latest, audit, snapshot
from tests.e2e.distributed.conftest import search, wait_for
from tests.e2e.distributed.test_replay_and_redrive import _republish_everything

pytestmark = pytest.mark.slow

TENANTS = ("acme", "globex")
TABLES = """
CREATE TABLE articles (id int PRIMARY KEY, tenant text NOT NULL, title text, body text, tags text[]);
ALTER TABLE articles ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE notes (id int PRIMARY KEY, body text);
ALTER TABLE notes ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE audit_log (id int PRIMARY KEY, message text);
"""
LATENCY_ROWS = 120


def _word(rng: random.Random, n: int = 9) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=n))


def _toasted(marker: str) -> str:
    # ~9 kB: the columns are STORAGE EXTERNAL (no compression), so Postgres keeps it out of line (TOAST).
    return f"The {marker} was sighted near the weir. " + "The heron nests by the weir. " * 300


def _mappings(tmp_path: Path, source: CdcSource) -> Path:
    path = tmp_path / "mappings.json"
    path.write_text(
        json.dumps(
            {
                "topic_prefix": source.prefix,
                "tables": [
                    {
                        "table": "public.articles",
                        "document_id": "article-{id}",
                        "tenant_column": "tenant",
                        "title": "{title}",
                        "text": "{title}\n\n{body}",
                        "metadata": {"tags": "tags"},
                    },
                    {"table": "public.notes", "document_id": "note-{id}", "tenant": "acme", "text": ["body"]},
                ],
            }
        )
    )
    return path


def _found(pipeline: LocalPipeline, tenant: str, word: str) -> set[str]:
    return {h["document_id"] for h in search(pipeline, tenant, word, mode="sparse")}


def _cdc_caught_up(pipeline: LocalPipeline) -> bool:
    settings = KafkaSettings(bootstrap_servers=pipeline.bootstrap_servers, group_prefix=pipeline.group_prefix)
    (group,) = asyncio.run(measure_lag(settings, [settings.group(CDC_STAGE)]))
    return bool(group.partitions) and group.total == 0 and pipeline.lag() == 0


def _dead_letters(bootstrap: str, topic: str, *, at_least: int) -> list[DeadLetter]:
    async def read() -> list[DeadLetter]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        letters: list[DeadLetter] = []
        try:
            deadline = time.monotonic() + 120
            while len(letters) < at_least and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    letters += [DeadLetter.model_validate_json(r.value) for r in batch]
        finally:
            await consumer.stop()
        return letters

    return asyncio.run(read())


def test_postgres_changes_reach_search_once_through_restarts_and_replays(
    make_pipeline: Callable[..., LocalPipeline],
    kafka_broker: KafkaBroker,
    kafka_connect: KafkaConnect,
    cdc_postgres: CdcPostgres,
    tmp_path: Path,
) -> None:
    rng = random.Random(20261127)
    words: dict[int, str] = {}  # row id -> a word only that row's body contains

    def body(row: int) -> str:
        words[row] = _word(rng)
        return f"Field report {row}. The {words[row]} was sighted near the weir."

    source = new_source(cdc_postgres, ddl=TABLES, tables="articles, notes, audit_log")
    for row in range(1, 6):  # present before the connector starts: they arrive as snapshot reads
        source.execute(
            "INSERT INTO articles VALUES (%s, %s, %s, %s, %s)",
            (row, TENANTS[row % 2], f"Report {row}", body(row), ["field"]),
        )
    toast_marker = _word(rng)
    source.execute("UPDATE articles SET body = %s WHERE id = 4", (_toasted(toast_marker),))
    words[4] = toast_marker
    note_marker = _word(rng)
    source.execute("INSERT INTO notes VALUES (1, %s)", (_toasted(note_marker),))

    bootstrap = kafka_broker.bootstrap_servers
    client = ConnectClient(kafka_connect.url)
    config = source.config(
        tables="public.articles,public.notes,public.audit_log",
        # Re-select only the articles' body: the notes keep Debezium's placeholder, which ingest refuses.
        **{"post.processors.reselector.reselect.columns.include.list": "public.articles:body"},
    )
    with running_connector(client, source, bootstrap, config):
        pipeline = make_pipeline(env={"HEADWATER_CDC_MAPPINGS": str(_mappings(tmp_path, source))})
        pipeline.start_all()

        def searchable(row: int, tenant: str | None = None) -> bool:
            return f"article-{row}" in _found(pipeline, tenant or TENANTS[row % 2], words[row])

        wait_for(lambda: all(searchable(r) for r in range(1, 6)), timeout_s=240, what="the snapshot rows")
        assert "note-1" in _found(pipeline, "acme", note_marker)

        # 120 inserts, one commit each, paced like a busy table: the latency sample.
        started = time.monotonic()
        for row in range(1000, 1000 + LATENCY_ROWS):
            source.execute(
                "INSERT INTO articles VALUES (%s, 'acme', %s, %s, NULL)", (row, f"Report {row}", body(row))
            )
            time.sleep(0.05)
        insert_rate = LATENCY_ROWS / (time.monotonic() - started)

        old_word = words[1]
        source.execute("UPDATE articles SET body = %s WHERE id = 1", (body(1),))  # an update
        source.execute("DELETE FROM articles WHERE id = 2")  # a delete (and its tombstone)
        source.execute("UPDATE articles SET id = 33 WHERE id = 3")  # a primary-key change
        words[33] = words[3]
        source.execute(
            "UPDATE articles SET title = 'Retitled report' WHERE id = 4"
        )  # body TOASTed, untouched
        source.execute("UPDATE notes SET id = id WHERE id = 1")  # no reselect for notes: the placeholder
        source.execute("INSERT INTO audit_log VALUES (1, 'login')")  # captured, but no mapping

        def changes_visible() -> bool:
            return (
                all(searchable(r, "acme") for r in range(1000, 1000 + LATENCY_ROWS))
                and searchable(1)
                and "article-1" not in _found(pipeline, TENANTS[1], old_word)
                and "article-2" not in _found(pipeline, TENANTS[0], words[2])
                and "article-3" not in _found(pipeline, TENANTS[1], words[3])
                and "article-33" in _found(pipeline, TENANTS[1], words[3])
                and "article-4" in _found(pipeline, TENANTS[0], "retitled")
            )

        wait_for(changes_visible, timeout_s=300, what="inserts, update, delete and key change in search")
        assert searchable(4)  # the TOASTed body survived the title-only update

        letters = _dead_letters(
            bootstrap, pipeline.topic_prefix + dead_letter_topic(CDC_STAGE).name, at_least=2
        )
        reasons = {letter.source_topic: (letter.error_type, letter.reason) for letter in letters}
        assert reasons[source.topic("public.notes")][0] == "UnavailableValue"
        assert reasons[source.topic("public.audit_log")][0] == "UnmappedTable"
        assert all(note_marker not in letter.reason for letter in letters)  # reasons carry no row values
        assert "note-1" in _found(pipeline, "acme", note_marker)  # the note keeps its indexed body

        # A connector restart resumes from its offsets; whatever it re-sends is a duplicate.
        client.restart(source.name)
        client.wait_running(source.name)
        source.execute("INSERT INTO articles VALUES (6, 'acme', 'After restart', %s, NULL)", (body(6),))
        wait_for(lambda: searchable(6, "acme"), what="a change after the connector restart")

        # Replay the whole CDC topic (every old version, deletes and tombstones included).
        article_topic = source.topic("public.articles")
        assert asyncio.run(_republish_everything(bootstrap, article_topic)) > LATENCY_ROWS
        wait_for(lambda: _cdc_caught_up(pipeline), timeout_s=300, what="the replay to be consumed")
        assert changes_visible() and searchable(6, "acme")

        source.execute("TRUNCATE articles")
        wait_for(
            lambda: not any(_found(pipeline, "acme", words[r]) for r in (6, 1000, 1000 + LATENCY_ROWS - 1)),
            timeout_s=240,
            what="the truncate to empty the table's documents",
        )
        source.execute("INSERT INTO articles VALUES (7, 'acme', 'After truncate', %s, NULL)", (body(7),))
        wait_for(lambda: searchable(7, "acme"), what="a row inserted after the truncate")
        asyncio.run(_republish_everything(bootstrap, article_topic))  # replayed truncate included
        wait_for(lambda: _cdc_caught_up(pipeline), timeout_s=300, what="the second replay to be consumed")

        records = read_topic(
            bootstrap, article_topic, until=lambda rs: any(r.key == b'{"id":7}' and r.value for r in rs)
        )
        row7 = [
            d
            for r in records
            if r.value is not None
            and isinstance(d := decode_record(r.topic, r.key, r.value), RowChange)
            and d.key == {"id": 7}
        ]
        version7 = upsert_version(row7[-1].lsn)
        pipeline.stop_all()

    points = snapshot(pipeline.home / "index", "headwater_chunks", TENANTS)
    every_row = [*range(1, 7), 33, *range(1000, 1000 + LATENCY_ROWS)]
    truth = {
        (TENANTS[r % 2] if r < 1000 and r != 6 else "acme", f"article-{r}"): Latest(0, True)
        for r in every_row
    }
    truth[("acme", "article-7")] = Latest(version7, False)
    truth[("acme", "note-1")] = Latest(0, False)
    result = audit(points, truth)
    print(f"\nCDC audit after a connector restart and two whole-topic replays: {result.line()}")
    assert result.clean, result
    placeholders = [p for p in points.values() if DEBEZIUM_UNAVAILABLE_VALUE in str(p.get("text", ""))]
    assert placeholders == []

    latencies = sorted(_commit_to_indexed(points, f"article-{r}") for r in range(1000, 1000 + LATENCY_ROWS))
    p50, p99 = statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"CDC commit -> indexed (searchable), {len(latencies)} inserts at {insert_rate:.0f}/s: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )


def _commit_to_indexed(points: dict[str, dict[str, Any]], document_id: str) -> float:
    """Seconds from the row's commit (`occurred_at`) to its first chunk's write (`indexed_at`)."""
    chunks = [p for p in points.values() if p["document_id"] == document_id and p.get("doc_version")]
    first = min(chunks, key=lambda p: str(p["indexed_at"]))
    return (
        datetime.fromisoformat(str(first["indexed_at"])) - datetime.fromisoformat(str(first["occurred_at"]))
    ).total_seconds()
