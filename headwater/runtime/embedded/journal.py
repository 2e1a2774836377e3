"""The intake journal: accepted changes are stored here before intake answers 202, and leave it only
once indexed or dead-lettered. It plays the part a Kafka topic plus committed offsets plays when
Headwater runs distributed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from headwater.kernel.postgres import DDL_LOCK
from schemas import DeadLetter, DocumentChanged

_SCHEMA = (
    DDL_LOCK
    + """
CREATE TABLE IF NOT EXISTS intake_journal (
    seq          bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    tenant       text NOT NULL,
    document_id  text NOT NULL,
    version      bigint NOT NULL,
    event        jsonb NOT NULL,
    accepted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial PRIMARY KEY,
    stage        text NOT NULL,
    tenant       text,
    document_id  text,
    letter       jsonb NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);
"""
)


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    event: DocumentChanged


class Journal:
    """Durable queue of accepted changes; a row is deleted when its change has been fully handled."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._conn = connect()
        self._lock = threading.Lock()  # one connection, shared by intake and the pipeline threads
        with self._lock:
            self._conn.execute(_SCHEMA)

    def append(self, event: DocumentChanged) -> bool:
        """Store a change durably; False when the same event was already accepted (idempotent intake)."""
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO intake_journal (event_id, tenant, document_id, version, event)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
                (
                    event.event_id,
                    event.tenant,
                    event.document_id,
                    event.version,
                    Jsonb(event.model_dump(mode="json")),
                ),
            )
            return cursor.rowcount == 1

    def pending(self, *, excluding: Collection[int], limit: int) -> list[JournalEntry]:
        """Oldest changes not yet handed to the pipeline. Concurrent intakes commit out of sequence
        order, so "after the last sequence fed" could skip a late commit: exclude what is in flight."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, event FROM intake_journal WHERE NOT (seq = ANY(%s)) ORDER BY seq LIMIT %s",
                (list(excluding), limit),
            ).fetchall()
        return [JournalEntry(seq=row[0], event=DocumentChanged.model_validate(row[1])) for row in rows]

    def complete(self, seqs: list[int]) -> None:
        """Forget handled changes; the raw (unredacted) text leaves the journal with them."""
        if seqs:
            with self._lock:
                self._conn.execute("DELETE FROM intake_journal WHERE seq = ANY(%s)", (seqs,))

    def backlog(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT count(*) FROM intake_journal").fetchone()
        return int(row[0]) if row else 0

    def dead_letter(self, letter: DeadLetter, *, tenant: str | None, document_id: str | None) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO dead_letters (stage, tenant, document_id, letter) VALUES (%s, %s, %s, %s)",
                (letter.stage, tenant, document_id, Jsonb(letter.model_dump(mode="json"))),
            )

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT letter FROM dead_letters ORDER BY id LIMIT %s", (limit,)
            ).fetchall()
        return [DeadLetter.model_validate(row[0]) for row in rows]

    def close(self) -> None:
        self._conn.close()
