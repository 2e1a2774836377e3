"""The CDC use case: a batch of Debezium records → document change events, row state kept in step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas import DocumentChanged
from schemas.common import utc_now
from schemas.sources import CdcMappings
from services.ingest.cdc.envelope import CdcRecord, RowChange, Tombstone
from services.ingest.cdc.logic import Plan, plan_row_change, plan_tombstone, plan_truncate
from services.ingest.cdc.tracker import RowState, RowTracker


@dataclass
class CdcIngest:
    """Turns records into events in order, inside one row-state transaction per batch.

    The state is written before the events are published and the offsets committed; if either fails the
    batch comes again and, planned against the state it wrote, yields the same events (see `logic`)."""

    mappings: CdcMappings
    tracker: RowTracker
    clock: Callable[[], datetime] = utc_now

    @property
    def topics(self) -> list[str]:
        return sorted(self.mappings.by_topic())

    def handle(self, records: list[CdcRecord]) -> list[list[DocumentChanged]]:
        """One list of events per record (possibly empty), in the records' order."""
        results: list[list[DocumentChanged]] = []
        with self.tracker.transaction() as state:
            for record in records:
                plan = self._plan(record, state)
                for write in plan.writes:
                    state.put(write.source, write.row_key, write.row)
                if plan.truncated is not None:
                    state.record_truncate(*plan.truncated)
                results.append(plan.events)
        return results

    def _plan(self, record: CdcRecord, state: RowState) -> Plan:
        if isinstance(record, RowChange):
            return plan_row_change(
                record,
                self.mappings,
                tracked=state.get(record.topic, record.row_key),
                truncated_at=state.truncated_at(record.topic),
            )
        if isinstance(record, Tombstone):
            return plan_tombstone(
                record, self.mappings, tracked=state.get(record.topic, record.row_key), now=self.clock()
            )
        rows = state.rows_to_truncate(record.topic, record.lsn)
        return plan_truncate(record, self.mappings, rows=rows)
