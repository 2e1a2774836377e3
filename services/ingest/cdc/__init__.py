"""Change data capture: Debezium's change events from Postgres become document change events."""

from services.ingest.cdc.envelope import CdcRecord, RowChange, Tombstone, Truncate, decode_record
from services.ingest.cdc.service import CdcIngest
from services.ingest.cdc.tracker import InMemoryRowTracker, RowTracker

__all__ = [
    "CdcIngest",
    "CdcRecord",
    "InMemoryRowTracker",
    "RowChange",
    "RowTracker",
    "Tombstone",
    "Truncate",
    "decode_record",
]
