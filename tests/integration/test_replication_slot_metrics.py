"""The replication slot gauges on a real Postgres with logical decoding: lag grows with WAL the slot's
reader has not confirmed, falls when it reads, and a dropped slot's series disappear."""

from __future__ import annotations

from prometheus_client import REGISTRY
from pydantic import SecretStr

from headwater.observability.replication import SlotMonitor, SlotMonitorSettings, start_slot_monitor
from headwater.stack.postgres import CdcPostgres
from tests.cdc_support import new_source


def _gauge(name: str, slot: str) -> float | None:
    return REGISTRY.get_sample_value(f"headwater_cdc_replication_slot_{name}", {"slot": slot})


def test_slot_lag_follows_unread_wal_and_a_dropped_slot_disappears(cdc_postgres: CdcPostgres) -> None:
    source = new_source(cdc_postgres)
    slot = source.name
    source.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    monitor = SlotMonitor(source.url, interval_s=60)

    (fresh,) = [s for s in monitor.poll_once() if s.slot == slot]
    assert fresh.active is False
    assert _gauge("active", slot) == 0

    source.execute(
        "INSERT INTO articles (id, tenant, title, body) "
        "SELECT i, 'acme', 'title ' || i, repeat('text ', 200) FROM generate_series(1, 2000) AS i"
    )
    (behind,) = [s for s in monitor.poll_once() if s.slot == slot]
    assert behind.lag_bytes > fresh.lag_bytes + 1_000_000  # ~2 MB of rows not read yet
    assert behind.retained_bytes >= behind.lag_bytes
    assert _gauge("lag_bytes", slot) == behind.lag_bytes

    # The slot's reader takes everything and confirms it (what Debezium does as it goes).
    source.execute(
        "SELECT count(*) FROM pg_logical_slot_get_binary_changes("
        "%s, NULL, NULL, 'proto_version', '1', 'publication_names', %s)",
        (slot, slot),
    )
    (caught_up,) = [s for s in monitor.poll_once() if s.slot == slot]
    assert caught_up.lag_bytes < behind.lag_bytes // 10

    source.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    assert slot not in {s.slot for s in monitor.poll_once()}
    assert _gauge("lag_bytes", slot) is None and _gauge("active", slot) is None


def test_the_monitor_runs_only_when_the_source_is_named(cdc_postgres: CdcPostgres) -> None:
    assert start_slot_monitor(SlotMonitorSettings(source_url=None)) is None
    monitor = start_slot_monitor(
        SlotMonitorSettings(source_url=SecretStr(cdc_postgres.url()), slot_poll_s=60)
    )
    assert monitor is not None and monitor.is_alive()
    monitor.stop()
    monitor.join(timeout=10)
    assert not monitor.is_alive()
