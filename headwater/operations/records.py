"""Pure helpers over Kafka records: who a record is about, positions, headers, instants."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from headwater.operations.errors import InvalidRequest

__all__ = [
    "DocumentRef",
    "Headers",
    "Outgoing",
    "Position",
    "Scope",
    "document_of",
    "parse_instant",
    "to_millis",
    "with_header",
]

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, order=True)
class Position:
    """A record's place in a topic: partition and offset."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> Position:
        """`"3:120"` → partition 3, offset 120."""
        partition, sep, offset = text.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise InvalidRequest(f"{text!r} is not PARTITION:OFFSET (e.g. 0:12)")
        return cls(int(partition), int(offset))

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DocumentRef:
    tenant: str
    document_id: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.document_id}"


def document_of(key: bytes | None, value: bytes | None) -> DocumentRef | None:
    """The document a pipeline record is about: from its key (`tenant/document_id`), else its JSON value."""
    if key:
        try:
            tenant, sep, document_id = key.decode().partition("/")
        except UnicodeDecodeError:
            sep = ""
        # A tenant id cannot contain "/", so the first one separates the two parts.
        if sep and tenant and document_id:
            return DocumentRef(tenant, document_id)
    if value:
        try:
            body = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        if isinstance(body, dict):
            fields = body.get("tenant"), body.get("document_id")
            if isinstance(fields[0], str) and isinstance(fields[1], str):
                return DocumentRef(fields[0], fields[1])
    return None


@dataclass(frozen=True)
class Scope:
    """Which documents an operation is about; no tenant and no ids means every document."""

    tenant: str | None = None
    document_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, *, tenant: str | None = None, document_ids: Iterable[str] = ()) -> Scope:
        return cls(tenant or None, frozenset(document_ids))

    @property
    def is_everything(self) -> bool:
        return self.tenant is None and not self.document_ids

    def matches(self, document: DocumentRef | None) -> bool:
        if self.is_everything:
            return True
        if document is None:  # a record nobody can attribute is never in a narrowed scope
            return False
        if self.tenant is not None and document.tenant != self.tenant:
            return False
        return not self.document_ids or document.document_id in self.document_ids

    def __str__(self) -> str:
        parts = [f"tenant {self.tenant}"] if self.tenant else []
        if self.document_ids:
            parts.append("documents " + ", ".join(sorted(self.document_ids)))
        return " and ".join(parts) or "every document"


@dataclass(frozen=True)
class Outgoing:
    """A record to publish."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


def with_header(headers: Sequence[tuple[str, bytes]], name: str, value: str) -> Headers:
    """`headers` with `name` set to `value`, replacing an earlier value (a replay of a replay)."""
    return [(k, v) for k, v in headers if k != name] + [(name, value.encode())]


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an explicit offset; a bare local time would be ambiguous across hosts."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not an ISO 8601 time (e.g. 2025-01-31T09:00:00Z)") from None
    if instant.tzinfo is None:
        raise InvalidRequest(f"{text!r} has no time zone; add one, e.g. {text}Z or {text}+02:00")
    return instant


def to_millis(instant: datetime) -> int:
    """Kafka record timestamps are Unix milliseconds."""
    return int(instant.timestamp() * 1000)
