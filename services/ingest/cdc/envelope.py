"""Debezium change records as typed values: a row change, a truncate, or a tombstone. Pure.

A record is Debezium's JSON envelope (`before`, `after`, `source`, `op`) as the JsonConverter writes it,
keyed by the row's primary key. A delete is followed by a tombstone (same key, null value); a
primary-key change is a delete of the old key plus a create of the new one; a truncate has no key.
Errors name fields, never values: the rows are personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from services.ingest.errors import MalformedChangeEvent

__all__ = ["CdcRecord", "RowChange", "Tombstone", "Truncate", "decode_record", "row_key"]

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowChange:
    """A create (`c`), update (`u`), snapshot read (`r`) or delete (`d`) of one row."""

    topic: str
    op: Literal["c", "u", "r", "d"]
    key: Row
    before: Row | None
    after: Row | None
    lsn: int
    committed_at: datetime
    table: str  # schema.table

    @property
    def row_key(self) -> str:
        return row_key(self.key)


@dataclass(frozen=True, slots=True)
class Truncate:
    """`TRUNCATE` of a whole table (Debezium emits it with `skipped.operations` not listing `t`)."""

    topic: str
    lsn: int
    committed_at: datetime
    table: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The null-valued record after a delete, for log compaction; carries only the old key."""

    topic: str
    key: Row

    @property
    def row_key(self) -> str:
        return row_key(self.key)


CdcRecord = RowChange | Truncate | Tombstone


def row_key(key: Row) -> str:
    """Canonical text of a primary key, the same whatever the column order of the record."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def _json_object(raw: bytes, what: str) -> Row:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedChangeEvent(f"the {what} is not JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise MalformedChangeEvent(f"the {what} is a JSON {type(value).__name__}, not an object")
    # With converter schemas enabled the envelope sits under `payload`; accept both.
    if set(value) == {"schema", "payload"}:
        value = value["payload"]
        if not isinstance(value, dict):
            raise MalformedChangeEvent(f"the {what}'s payload is not an object")
    return value


def decode_record(topic: str, key: bytes | None, value: bytes | None) -> CdcRecord:
    """Parse one record of a Debezium topic; `MalformedChangeEvent` if it is not a change event."""
    if value is None:
        if key is None:
            raise MalformedChangeEvent("a tombstone without a key")
        return Tombstone(topic=topic, key=_json_object(key, "key"))
    envelope = _json_object(value, "value")
    op = envelope.get("op")
    source = envelope.get("source")
    if not isinstance(source, dict):
        raise MalformedChangeEvent("no `source` block")
    lsn = source.get("lsn")
    if not isinstance(lsn, int) or isinstance(lsn, bool) or lsn < 0:
        raise MalformedChangeEvent("`source.lsn` is missing or not a non-negative integer")
    ts_ms = source.get("ts_ms")
    if not isinstance(ts_ms, int) or isinstance(ts_ms, bool):
        raise MalformedChangeEvent("`source.ts_ms` is missing or not an integer")
    schema, table = source.get("schema"), source.get("table")
    if not isinstance(schema, str) or not isinstance(table, str):
        raise MalformedChangeEvent("`source.schema` or `source.table` is missing")
    committed_at = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    qualified = f"{schema}.{table}"
    if op == "t":
        return Truncate(topic=topic, lsn=lsn, committed_at=committed_at, table=qualified)
    if op not in ("c", "u", "r", "d"):
        raise MalformedChangeEvent(f"unsupported op {op!r}" if isinstance(op, str) else "no `op`")
    if key is None:
        raise MalformedChangeEvent(f"a row change (op {op}) without a key: the table needs a primary key")
    before, after = envelope.get("before"), envelope.get("after")
    if before is not None and not isinstance(before, dict):
        raise MalformedChangeEvent("`before` is not an object")
    if after is not None and not isinstance(after, dict):
        raise MalformedChangeEvent("`after` is not an object")
    if op == "d" and before is None:
        raise MalformedChangeEvent("a delete without `before`")
    if op != "d" and after is None:
        raise MalformedChangeEvent(f"op {op} without `after`")
    return RowChange(
        topic=topic,
        op=op,
        key=_json_object(key, "key"),
        before=before,
        after=after,
        lsn=lsn,
        committed_at=committed_at,
        table=qualified,
    )
