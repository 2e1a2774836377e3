"""Traces: one document followed from intake to the index, one query through its retrievers.

W3C trace context travels with the work: in HTTP headers into intake and query, in Kafka record
headers (`traceparent`, `tracestate`) from stage to stage, and on the `Envelope` between the embedded
runtime's threads. A stage opens one span per message, a child of the context the message came with,
and hands that span's context on with the message's outputs and dead letters: one document keeps one
trace id from intake to indexer, and each hop is the parent of the next.

Export is set by the standard OTEL_* variables (OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`), plus `HEADWATER_TRACES_FILE` for JSON lines. With neither,
no SDK is installed: spans are the API's non-recording no-ops, and contexts that arrive are handed on
unchanged. Span attributes are ids, counts and modes, never document or query text.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from headwater.observability.config import ObservabilitySettings

tracer = trace.get_tracer("headwater")

KafkaHeaders = Sequence[tuple[str, bytes | None]]
# Senders whose trace ids are not ours to continue: a webhook starts its own trace.
UNTRUSTED_PATHS = ("/v1/webhooks/",)


# -- setup ----------------------------------------------------------------------------------------
def configure(service: str, *, settings: ObservabilitySettings | None = None) -> bool:
    """Install the SDK when an exporter is configured; False (spans stay no-ops) when none is."""
    from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    settings = settings or ObservabilitySettings()
    otlp = _otlp_configured()
    if os.environ.get(OTEL_SDK_DISABLED, "").lower() == "true" or not (otlp or settings.traces_file):
        return False
    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over the default name.
    named = OTELResourceDetector().detect().attributes.get("service.name")
    resource = Resource.create({} if named else {"service.name": f"headwater-{service}"})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER(_ARG)
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if settings.traces_file:
        from headwater.observability.span_file import JsonLinesSpanExporter

        path = Path(str(settings.traces_file).replace("{service}", service))
        # Synchronous, so a test reads every span as soon as it ended; a file is for tests and debugging.
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    trace.set_tracer_provider(provider)
    return True


def _otlp_configured() -> bool:
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").replace(" ", "").split(",")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint) and "otlp" in exporters


# -- propagation ----------------------------------------------------------------------------------
class _KafkaGetter(Getter[KafkaHeaders]):
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        found = [(v or b"").decode("utf-8", "replace") for k, v in carrier if k.lower() == key.lower()]
        return found or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [k for k, _ in carrier]


class _KafkaSetter(Setter[MutableSequence[tuple[str, bytes]]]):
    def set(self, carrier: MutableSequence[tuple[str, bytes]], key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k.lower() != key.lower()]
        carrier.append((key, value.encode()))


KAFKA_GETTER, KAFKA_SETTER = _KafkaGetter(), _KafkaSetter()


def extract_kafka(headers: KafkaHeaders) -> Context:
    """The trace context a Kafka record carries; an empty context (a new trace) when it has none."""
    return propagate.extract(headers, context=Context(), getter=KAFKA_GETTER)


def inject_kafka(headers: MutableSequence[tuple[str, bytes]], context: Context | None = None) -> None:
    """Write `context` (default: the current one) into aiokafka-style headers, replacing any there."""
    propagate.inject(headers, context=context, setter=KAFKA_SETTER)


def trace_headers(context: Context | None = None) -> dict[str, str]:
    """`traceparent`/`tracestate` of `context` (default: the current one); empty when nothing is traced."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


# -- stage spans ----------------------------------------------------------------------------------
@dataclass
class StageSpans:
    """One span per message a stage processes, each a child of the context the message came with,
    and a batch span that links them; the batch span is the current span until `close`."""

    batch: Span
    spans: dict[Hashable, Span] = field(default_factory=dict)
    _token: object = None

    @classmethod
    def open(
        cls,
        stage: str,
        parents: Mapping[Hashable, Context | None],
        *,
        attributes: Mapping[Hashable, Attributes] | None = None,
    ) -> StageSpans:
        common = {"headwater.stage": stage, "messaging.operation.type": "process"}
        spans: dict[Hashable, Span] = {}
        for key, parent in parents.items():
            spans[key] = tracer.start_span(
                f"{stage} process",
                context=parent or Context(),  # no context: the message starts a trace
                kind=SpanKind.CONSUMER,
                attributes={**common, **dict((attributes or {}).get(key) or {})},
            )
        batch = tracer.start_span(
            f"{stage} batch",
            context=Context(),
            attributes={**common, "messaging.batch.message_count": len(spans)},
            links=[Link(s.get_span_context()) for s in spans.values() if s.get_span_context().is_valid],
        )
        token = otel_context.attach(trace.set_span_in_context(batch))
        return cls(batch=batch, spans=spans, _token=token)

    def context(self, key: Hashable) -> Context | None:
        """What the message's outputs carry on: its span as their parent (None: not a message here)."""
        span = self.spans.get(key)
        return trace.set_span_in_context(span) if span is not None else None

    def headers(self, key: Hashable) -> dict[str, str]:
        context = self.context(key)
        return trace_headers(context) if context is not None else {}

    def failed(self, key: Hashable, error: BaseException | str) -> None:
        """The message was given up (or its batch rewound): the error's type, never its message."""
        kind = error if isinstance(error, str) else type(error).__name__
        span = self.spans.get(key)
        if span is not None:
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))

    def failed_all(self, error: BaseException | str) -> None:
        for key in self.spans:
            self.failed(key, error)

    def close(self) -> None:
        for span in self.spans.values():
            span.end()
        self.batch.end()
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None


def kafka_spans(stage: str, records: Iterable[Any]) -> StageSpans:
    """Stage spans for a batch of aiokafka records, keyed by `record_key`."""
    batch = list(records)
    return StageSpans.open(
        stage,
        {record_key(r): extract_kafka(r.headers) for r in batch},
        attributes={
            record_key(r): {
                "messaging.system": "kafka",
                "messaging.destination.name": r.topic,
                "messaging.destination.partition.id": str(r.partition),
                "messaging.kafka.offset": r.offset,
                # tenant/document_id: identifiers only
                "messaging.kafka.message.key": (r.key or b"").decode("utf-8", "replace"),
            }
            for r in batch
        },
    )


def record_key(record: Any) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def document_attributes(message: Any) -> dict[str, str | int]:
    """Which document a message is about (ids and version; never its text)."""
    found: dict[str, str | int] = {}
    for name in ("tenant", "document_id", "version"):
        value = getattr(message, name, None)
        if isinstance(value, str | int):
            found[f"headwater.{name}"] = value
    return found


# -- the embedded runtime's intake ----------------------------------------------------------------
class TracedChangeLog:
    """A change log that remembers the trace each change was accepted under, so the in-process
    pipeline continues it; after a restart a change's stages start a trace of their own."""

    def __init__(self, changes: Any, *, capacity: int = 10_000) -> None:
        self._changes = changes
        self._contexts: OrderedDict[str, Context] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def append(self, event: Any) -> bool:
        appended: bool = self._changes.append(event)
        if trace.get_current_span().get_span_context().is_valid:
            with self._lock:
                self._contexts[event.event_id] = otel_context.get_current()
                while len(self._contexts) > self._capacity:
                    self._contexts.popitem(last=False)
        return appended

    def context_of(self, event_id: str) -> Context | None:
        with self._lock:
            return self._contexts.pop(event_id, None)


# -- HTTP -----------------------------------------------------------------------------------------
# FastAPI's own server spans are off: they record `url.path` (ids a caller chose, entity names among
# them) and continue any caller's trace, webhook senders' included. `TracingMiddleware` does neither.
FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False}


class TracingMiddleware:
    """A server span per HTTP request (pure ASGI), continuing the caller's `traceparent` except on
    paths whose callers are outside (webhooks). Named by route, never by path: paths hold ids."""

    def __init__(self, app: Any, *, untrusted_paths: tuple[str, ...] = UNTRUSTED_PATHS) -> None:
        self.app = app
        self.untrusted_paths = untrusted_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        parent = Context()
        if not str(scope.get("path", "")).startswith(self.untrusted_paths):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            parent = propagate.extract(headers, context=Context())
        with tracer.start_as_current_span(
            f"HTTP {method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,  # an exception's message may quote the request
            set_status_on_exception=False,
        ) as span:

            async def traced_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, traced_send)
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
