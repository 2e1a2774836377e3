"""Prometheus metrics of both runtimes: one set of metric objects, so one dashboard reads either.

Distributed services serve them on `--metrics-port` (and HTTP services on their API port, `/metrics`);
the embedded runtime serves them at `GET /metrics` of its HTTP app.

Stage accounting, per stage, per process (docs/operations.md, "Metrics and alerts"):
- `in`: messages the stage received, counted at receipt (a message handed back and received again
  counts again);
- `out`: received messages the stage completed: the handler succeeded, its outputs were handed on
  and (distributed) the offset committed. One input may yield several output events: those are
  `events_emitted` (what the next stage receives), not `out`;
- `dead_lettered`: received messages given up and written to the stage's dead-letter topic/table;
- `rewound`: received messages handed back unresolved (downstream outage, failed commit); they are
  received again later.
Every received message ends in exactly one of the last three, so once a stage is idle
`in == out + dead_lettered + rewound`, and `rewound` stays 0 unless a downstream was down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# -- stages ---------------------------------------------------------------------------------------
STAGE_IN = Counter("headwater_stage_messages_in_total", "messages a stage received", ["stage"])
STAGE_OUT = Counter(
    "headwater_stage_messages_out_total", "received messages a stage completed and handed on", ["stage"]
)
STAGE_DEAD_LETTERED = Counter(
    "headwater_stage_messages_dead_lettered_total", "received messages a stage dead-lettered", ["stage"]
)
STAGE_REWOUND = Counter(
    "headwater_stage_messages_rewound_total",
    "received messages handed back unresolved (downstream down, failed commit); received again later",
    ["stage"],
)
STAGE_FAILED = Counter(
    "headwater_stage_messages_failed_total",
    "messages in handler attempts that raised; kind=transient (retried or rewound) or permanent "
    "(isolated, then dead-lettered unless they pass alone)",
    ["stage", "kind"],
)
STAGE_EMITTED = Counter(
    "headwater_stage_events_emitted_total", "output events a stage published to the next stage", ["stage"]
)
STAGE_RETRIES = Counter(
    "headwater_stage_retries_total", "handler attempts retried after a transient error", ["stage"]
)
STAGE_IN_FLIGHT = Gauge("headwater_stage_in_flight_messages", "messages a stage holds unresolved", ["stage"])
STAGE_BATCH_SECONDS = Histogram(
    "headwater_stage_batch_seconds",
    "stage latency: a batch from receipt to completion (distributed: to the offset commit)",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
STAGE_BATCH_SIZE = Histogram(
    "headwater_stage_batch_size",
    "messages per batch a stage received",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
BACKPRESSURE_PAUSES = Counter(
    "headwater_backpressure_pauses_total",
    "times a stage stopped taking work: reason=downstream_unavailable|error (distributed: the batch "
    "is rewound and the consumer sleeps) or queue_full (embedded: the next stage's queue is full)",
    ["stage", "reason"],
)
CONSUMER_LAG = Gauge(
    "headwater_consumer_lag_messages",
    "records of a partition after the consumer's position (its highwater at the last fetch minus the "
    "next offset it will read), updated after every batch",
    ["stage", "topic", "partition"],
)

# -- end to end -----------------------------------------------------------------------------------
FRESHNESS_SECONDS = Histogram(
    "headwater_freshness_seconds",
    "source timestamp (API/webhook receipt, CDC commit time) to indexed, by source kind",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
INTAKE_TO_INDEX_SECONDS = Histogram(
    "headwater_intake_to_index_seconds",
    "distributed: the broker's acknowledgement of an intake record to indexed (headwater-accepted-at)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
INTAKE = Counter("headwater_intake_total", "changes offered to intake, by outcome", ["outcome"])
JOURNAL_BACKLOG = Gauge("headwater_journal_backlog_messages", "embedded: accepted changes not yet completed")

# -- stage specifics ------------------------------------------------------------------------------
EMBEDDING_TOKENS = Counter(
    "headwater_embedding_tokens_total",
    "chunk tokens sent to the embedding model (cache hits excluded)",
    ["model"],
)
EMBEDDING_TEXTS = Counter(
    "headwater_embedding_texts_total",
    "chunk texts sent to the embedding model (cache hits excluded)",
    ["model"],
)
PII_ENTITIES = Counter("headwater_pii_entities_total", "PII entities redacted, by entity type", ["type"])
QUERY_SECONDS = Histogram(
    "headwater_query_seconds",
    "search latency at the API, by mode, graph expansion, reranking and outcome (ok|error)",
    ["mode", "graph", "rerank", "outcome"],
    buckets=_LATENCY_BUCKETS,
)

# -- CDC source -----------------------------------------------------------------------------------
SLOT_LAG_BYTES = Gauge(
    "headwater_cdc_replication_slot_lag_bytes",
    "WAL written on the CDC source after the slot's confirmed flush position (not yet read by Debezium)",
    ["slot"],
)
SLOT_RETAINED_BYTES = Gauge(
    "headwater_cdc_replication_slot_retained_bytes", "WAL the slot keeps on the source's disk", ["slot"]
)
SLOT_ACTIVE = Gauge("headwater_cdc_replication_slot_active", "1 while a consumer reads the slot", ["slot"])


class StageMeter:
    """The metrics of one stage with its labels bound (its series exist at 0 from the start, so
    `increase()` and alerts see the first dead letter)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._in = STAGE_IN.labels(stage)
        self._out = STAGE_OUT.labels(stage)
        self._dead = STAGE_DEAD_LETTERED.labels(stage)
        self._rewound = STAGE_REWOUND.labels(stage)
        self._emitted = STAGE_EMITTED.labels(stage)
        self._retries = STAGE_RETRIES.labels(stage)
        self._transient = STAGE_FAILED.labels(stage, "transient")
        self._permanent = STAGE_FAILED.labels(stage, "permanent")
        self._in_flight = STAGE_IN_FLIGHT.labels(stage)
        self._seconds = STAGE_BATCH_SECONDS.labels(stage)
        self._size = STAGE_BATCH_SIZE.labels(stage)

    def received(self, count: int) -> None:
        self._in.inc(count)
        self._size.observe(count)
        self._in_flight.set(count)

    def completed(self, count: int, *, dead_lettered: int = 0) -> None:
        """`count` messages done and handed on, `dead_lettered` given up."""
        self._out.inc(count)
        self._dead.inc(dead_lettered)

    def rewound(self, count: int) -> None:
        self._rewound.inc(count)

    def retried(self, count: int) -> None:
        self._retries.inc(count)

    def emitted(self, count: int) -> None:
        self._emitted.inc(count)

    def batch_done(self, seconds: float) -> None:
        self._seconds.observe(seconds)

    def idle(self) -> None:
        self._in_flight.set(0)

    def paused(self, reason: str) -> None:
        BACKPRESSURE_PAUSES.labels(self.stage, reason).inc()

    def counting_failures(
        self, handler: Callable[[list[Any]], Sequence[Any]], transient: tuple[type[BaseException], ...]
    ) -> Callable[[list[Any]], Sequence[Any]]:
        """`handler`, counting the messages of each attempt that raises (it re-raises)."""

        def counted(messages: list[Any]) -> Sequence[Any]:
            try:
                return handler(messages)
            except transient:
                self._transient.inc(len(messages))
                raise
            except Exception:
                self._permanent.inc(len(messages))
                raise

        return counted


def observe_consumer_lag(stage: str, consumer: Any, records: Iterable[Any], *, committed: bool) -> None:
    """Lag of each partition of a batch once it is resolved: the partition's highwater at the last
    fetch minus the offset the consumer reads next (past the batch if `committed`, else its first
    record). Best effort: a metric never stops delivery."""
    highwater = getattr(consumer, "highwater", None)
    if highwater is None:
        return
    from aiokafka import TopicPartition  # type: ignore[import-untyped]

    next_offsets: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        offset = record.offset + 1 if committed else record.offset
        known = next_offsets.get(key)
        next_offsets[key] = offset if known is None else (max if committed else min)(known, offset)
    for (topic, partition), next_offset in next_offsets.items():
        try:
            end = highwater(TopicPartition(topic, partition))
        except (AssertionError, AttributeError, KeyError):  # revoked by a rebalance meanwhile
            continue
        if end is not None:
            CONSUMER_LAG.labels(stage, topic, str(partition)).set(max(0, end - next_offset))


def observe_freshness(events: Iterable[Any], *, now: datetime) -> None:
    """Source timestamp to `now` for each indexed event (`occurred_at`: the API or webhook receipt,
    the commit time of a CDC change)."""
    for event in events:
        occurred = getattr(event, "occurred_at", None)
        if occurred is None:
            continue
        kind = getattr(getattr(event, "source", None), "kind", "unknown")
        FRESHNESS_SECONDS.labels(str(kind)).observe(max(0.0, (now - occurred).total_seconds()))


def count_pii(counts: Mapping[str, int]) -> None:
    for entity, count in counts.items():
        if count:
            PII_ENTITIES.labels(entity).inc(count)


class MeteredBackend:
    """An embedding backend that counts what it sends to the model: texts, and their tokens as the
    chunker counted them (`tokens_by_text`). Cache hits never reach it."""

    def __init__(self, backend: Any, tokens_by_text: Mapping[str, int]) -> None:
        self._backend = backend
        self._tokens = tokens_by_text

    @property
    def model_id(self) -> str:
        return str(self._backend.model_id)

    @property
    def dimension(self) -> int:
        return int(self._backend.dimension)

    @property
    def max_input_tokens(self) -> int:
        return int(self._backend.max_input_tokens)

    def __getattr__(self, name: str) -> Any:  # anything else a backend offers, unchanged
        return getattr(self._backend, name)

    def embed(self, texts: Sequence[str]) -> Any:
        rows = self._backend.embed(texts)
        EMBEDDING_TEXTS.labels(self.model_id).inc(len(texts))
        EMBEDDING_TOKENS.labels(self.model_id).inc(sum(self._tokens.get(text, 0) for text in texts))
        return rows


def observe_query(*, mode: str, graph: bool, rerank: bool, ok: bool, seconds: float) -> None:
    QUERY_SECONDS.labels(mode, str(graph).lower(), str(rerank).lower(), "ok" if ok else "error").observe(
        seconds
    )


def serve_metrics(port: int | None) -> None:
    """Expose the default registry on `port` (None or 0: metrics stay internal)."""
    if port:
        start_http_server(port)


def exposition() -> tuple[bytes, str]:
    """The default registry in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def install_metrics_route(app: FastAPI, *, before_scrape: Callable[[], None] | None = None) -> None:
    """`GET /metrics` on a FastAPI app; `before_scrape` refreshes gauges that are read, not pushed."""
    from fastapi import Response

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Response:
        if before_scrape is not None:
            before_scrape()
        body, content_type = exposition()
        return Response(body, media_type=content_type)
