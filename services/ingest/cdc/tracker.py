"""The row state CDC needs (see `logic`): its port, and an in-memory implementation for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from services.ingest.cdc.logic import TrackedRow, delete_version

__all__ = ["InMemoryRowTracker", "RowState", "RowTracker"]


class RowState(Protocol):
    """Reads and writes of the row state inside one transaction."""

    def get(self, source: str, row_key: str) -> TrackedRow | None:
        """The state of one row of one source (a Debezium topic)."""

    def truncated_at(self, source: str) -> int | None:
        """LSN of the latest truncate of the source's table, if any."""

    def rows_to_truncate(self, source: str, lsn: int) -> list[tuple[str, TrackedRow]]:
        """(row key, state) of rows live before `lsn`, and of rows a truncate at `lsn` already deleted."""

    def put(self, source: str, row_key: str, row: TrackedRow) -> None:
        """Store a row's state, replacing the previous one."""

    def record_truncate(self, source: str, lsn: int) -> None:
        """Remember the truncate (the highest LSN wins)."""


class RowTracker(Protocol):
    def transaction(self) -> AbstractContextManager[RowState]:
        """A unit of work: everything written inside is kept together, or nothing is."""


@dataclass
class _MemoryState:
    rows: dict[tuple[str, str], TrackedRow] = field(default_factory=dict)
    truncates: dict[str, int] = field(default_factory=dict)

    def get(self, source: str, row_key: str) -> TrackedRow | None:
        return self.rows.get((source, row_key))

    def truncated_at(self, source: str) -> int | None:
        return self.truncates.get(source)

    def rows_to_truncate(self, source: str, lsn: int) -> list[tuple[str, TrackedRow]]:
        return sorted(
            (
                (key, row)
                for (src, key), row in self.rows.items()
                if src == source
                and (
                    (row.deleted_version is None and row.lsn < lsn)
                    or row.deleted_version == delete_version(lsn)  # deleted by this very truncate
                )
            ),
            key=lambda item: item[0],
        )

    def put(self, source: str, row_key: str, row: TrackedRow) -> None:
        self.rows[(source, row_key)] = row

    def record_truncate(self, source: str, lsn: int) -> None:
        self.truncates[source] = max(lsn, self.truncates.get(source, lsn))


class InMemoryRowTracker:
    """Row state in a dict; a failed transaction leaves it as it was."""

    def __init__(self) -> None:
        self.state = _MemoryState()

    @contextmanager
    def transaction(self) -> Iterator[RowState]:
        draft = _MemoryState(dict(self.state.rows), dict(self.state.truncates))
        yield draft
        self.state = draft
