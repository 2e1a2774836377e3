"""Prometheus metrics of the service processes (scraped at `/metrics` on the metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECORDS = Counter("headwater_records_total", "records a stage consumed, by outcome", ["stage", "outcome"])
RETRIES = Counter("headwater_retries_total", "transient failures retried", ["stage"])
PAUSES = Counter("headwater_pauses_total", "batches left uncommitted while a downstream was down", ["stage"])
IN_FLIGHT = Gauge("headwater_in_flight_records", "records a stage holds uncommitted", ["stage"])
BATCH_SECONDS = Histogram(
    "headwater_batch_seconds",
    "time from fetch to commit of one batch",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FRESHNESS_SECONDS = Histogram(
    "headwater_freshness_seconds",
    "intake acknowledgement to indexed",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
INTAKE = Counter("headwater_intake_total", "changes offered to intake, by outcome", ["outcome"])


def serve_metrics(port: int | None) -> None:
    """Expose the default registry on `port` (None or 0: metrics stay internal)."""
    if port:
        start_http_server(port)
