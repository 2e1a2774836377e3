"""Replication slot lag of the CDC source, exported by the ingest process.

A logical slot keeps every WAL segment its consumer (Debezium) has not confirmed: a stopped or slow
connector fills the source database's disk. With `HEADWATER_CDC_SOURCE_URL` (a connection to the
source database; any role may read `pg_replication_slots`) the ingest process polls the slots of
that database and exports `headwater_cdc_replication_slot_{lag_bytes,retained_bytes,active}`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from headwater.observability.metrics import SLOT_ACTIVE, SLOT_LAG_BYTES, SLOT_RETAINED_BYTES

logger = logging.getLogger(__name__)


class SlotMonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_CDC_", frozen=True, extra="ignore")

    source_url: SecretStr | None = Field(
        default=None, description="the CDC source database, to export its replication slots' lag"
    )
    slot_poll_s: float = Field(default=15.0, gt=0, description="how often the slots are read")


@dataclass(frozen=True)
class SlotState:
    slot: str
    active: bool
    lag_bytes: int  # WAL after the confirmed flush position: not yet read and confirmed by Debezium
    retained_bytes: int  # WAL after the restart position: what the slot keeps on disk


_SLOTS = """
SELECT slot_name,
       active,
       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), COALESCE(confirmed_flush_lsn, restart_lsn)), 0)::bigint,
       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
FROM pg_replication_slots
WHERE slot_type = 'logical' AND database = current_database()
ORDER BY slot_name
"""


def read_slots(conn: psycopg.Connection[Any]) -> list[SlotState]:
    """The logical slots of the connected database (a standby has no current WAL position: use the
    primary's URL)."""
    rows = conn.execute(_SLOTS).fetchall()
    return [SlotState(slot, bool(active), int(lag), int(kept)) for slot, active, lag, kept in rows]


def export_slots(states: list[SlotState], *, previous: set[str]) -> set[str]:
    """Set the gauges; a slot that disappeared (dropped) loses its series. Returns the slots shown."""
    shown = {s.slot for s in states}
    for gone in previous - shown:
        for gauge in (SLOT_LAG_BYTES, SLOT_RETAINED_BYTES, SLOT_ACTIVE):
            gauge.remove(gone)
    for state in states:
        SLOT_LAG_BYTES.labels(state.slot).set(state.lag_bytes)
        SLOT_RETAINED_BYTES.labels(state.slot).set(state.retained_bytes)
        SLOT_ACTIVE.labels(state.slot).set(1 if state.active else 0)
    return shown


class SlotMonitor(threading.Thread):
    """Polls the slots every `interval_s`; an unreachable source is logged and tried again."""

    def __init__(self, url: str, *, interval_s: float) -> None:
        super().__init__(name="cdc-slot-monitor", daemon=True)
        self._url = url
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._shown: set[str] = set()

    def poll_once(self) -> list[SlotState]:
        with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
            states = read_slots(conn)
        self._shown = export_slots(states, previous=self._shown)
        return states

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.poll_once()
            except psycopg.Error as exc:  # the source restarting must not stop the monitor
                logger.warning("CDC slot monitor: cannot read the source's slots (%s)", type(exc).__name__)
            self._halt.wait(self._interval_s)

    def stop(self) -> None:
        self._halt.set()


def start_slot_monitor(settings: SlotMonitorSettings | None = None) -> SlotMonitor | None:
    """Start polling when `HEADWATER_CDC_SOURCE_URL` is set; None otherwise."""
    settings = settings or SlotMonitorSettings()
    if settings.source_url is None:
        return None
    monitor = SlotMonitor(settings.source_url.get_secret_value(), interval_s=settings.slot_poll_s)
    monitor.start()
    return monitor
