"""Helpers shared by the vector-index adapters."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from services.indexer.errors import IndexConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# One page of a document's points; documents rarely have more chunks, and paging covers the rest.
DOCUMENT_PAGE = 1000


def check_name(name: str) -> str:
    """Refuse collection and alias names that could escape a directory or confuse a URL."""
    if not _NAME.match(name) or ".." in name:
        raise IndexConfigError(f"invalid collection or alias name {name!r}")
    return name


_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def check_metadata_key(key: str) -> str:
    """Refuse a metadata key that is no payload path (an empty segment, as in "a." or "a..b")."""
    if len(key) > 64 or not _METADATA_KEY.match(key):
        raise IndexConfigError(f"invalid metadata key {key!r}")
    return key


def metadata_key(key: str) -> str:
    """Payload path of a metadata key: filters can only ever reach inside `metadata`."""
    return f"metadata.{key}"


def as_utc(moment: datetime | None) -> datetime | None:
    """An aware UTC date-time; a naive one is taken as UTC, as both Qdrant engines take stored values."""
    if moment is None:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def utc_iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC (`...Z`), the form qdrant-edge's datetime range parses."""
    aware = as_utc(moment)
    return None if aware is None else aware.isoformat().replace("+00:00", "Z")
