"""Trace context across hops: Kafka headers, stage spans, the embedded runtime's envelopes, HTTP."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from headwater.observability import tracing
from headwater.runtime.embedded.workers import Envelope, StageWorker
from tests.tracing_support import hex_ids, recording

tracer = trace.get_tracer(__name__)


def _traceparent(span: Any) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def test_kafka_headers_round_trip_the_trace_context() -> None:
    with recording(), tracer.start_as_current_span("producer") as span:
        headers: list[tuple[str, bytes]] = [("headwater-accepted-at", b"1700000000000")]
        tracing.inject_kafka(headers)
        tracing.inject_kafka(headers)  # again: replaced, not repeated

    assert [k for k, _ in headers] == ["headwater-accepted-at", "traceparent"]
    assert dict(headers)["traceparent"] == _traceparent(span).encode()
    extracted = trace.get_current_span(tracing.extract_kafka(headers)).get_span_context()
    assert (extracted.trace_id, extracted.span_id) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
    )
    assert extracted.is_remote


def test_a_record_without_trace_headers_starts_a_new_trace() -> None:
    for headers in ([], [("traceparent", b"\xff\xfe not a traceparent")], [("other", None)]):
        context = tracing.extract_kafka(headers)
        assert not trace.get_current_span(context).get_span_context().is_valid


def test_nothing_is_injected_when_nothing_is_traced() -> None:
    assert tracing.trace_headers() == {}


def test_each_record_span_is_a_child_of_its_record_and_hands_its_own_context_on() -> None:
    with recording() as exporter:
        with tracer.start_as_current_span("document a") as a:
            headers_a: list[tuple[str, bytes]] = []
            tracing.inject_kafka(headers_a)
        records = [
            SimpleNamespace(topic="t", partition=0, offset=7, key=b"acme/a", headers=headers_a),
            SimpleNamespace(topic="t", partition=1, offset=3, key=b"acme/b", headers=[]),
        ]
        before = trace.get_current_span()
        spans = tracing.kafka_spans("chunker", records)
        assert trace.get_current_span() is spans.batch  # logs of the batch carry its ids
        out_a = spans.headers(tracing.record_key(records[0]))
        spans.failed(tracing.record_key(records[1]), ValueError("text of the document"))
        spans.close()
        assert trace.get_current_span() is before

    by_name: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    process_b, process_a = sorted(
        by_name["chunker process"], key=lambda s: s.attributes["messaging.kafka.offset"]
    )
    a_trace, a_id, _ = hex_ids(a)  # type: ignore[arg-type]
    assert hex_ids(process_a)[0] == a_trace and hex_ids(process_a)[2] == a_id
    assert hex_ids(process_b)[2] is None and hex_ids(process_b)[0] != a_trace  # its own trace
    assert out_a["traceparent"].split("-")[1:3] == [a_trace, hex_ids(process_a)[1]]
    assert process_a.attributes["messaging.kafka.message.key"] == "acme/a"
    assert process_a.attributes["headwater.stage"] == "chunker"
    assert process_b.status.status_code is StatusCode.ERROR
    assert process_b.status.description == "ValueError"  # the type, never the message
    (batch,) = by_name["chunker batch"]
    assert {link.context.span_id for link in batch.links} == {
        s.context.span_id for s in (process_a, process_b)
    }


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _worker(name: str, inbox: queue.Queue[Envelope], process: Any, out: queue.Queue[Envelope]) -> StageWorker:
    def emit(envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            out.put(envelope)

    return StageWorker(
        name=name,
        inbox=inbox,
        process=process,
        emit=emit,
        dead_letter=lambda stage, envelope, error, attempts: out.put(envelope),
        batch_size=8,
        transient=(),
        max_attempts=1,
        stop=threading.Event(),
    )


def test_embedded_stages_continue_the_trace_each_envelope_carries() -> None:
    first_in: queue.Queue[Envelope] = queue.Queue()
    second_in: queue.Queue[Envelope] = queue.Queue()
    finished: queue.Queue[Envelope] = queue.Queue()  # indexed or dead-lettered

    def refuse_odd(batch: list[int]) -> list[int]:
        if any(m % 2 for m in batch):
            raise ValueError("odd")
        return batch

    with recording() as exporter:
        with tracer.start_as_current_span("intake") as intake:
            first_in.put(Envelope(0, 2, trace.set_span_in_context(intake)))
        first_in.put(Envelope(1, 3))  # accepted before a restart: no remembered trace
        workers = [_worker("one", first_in, list, second_in), _worker("two", second_in, refuse_odd, finished)]
        for worker in workers:
            worker.start()
        assert sorted(finished.get(timeout=10).seq for _ in range(2)) == [0, 1]
        for worker in workers:
            worker._halt.set()
            worker.join(timeout=5)

    recorded = exporter.get_finished_spans()
    assert {"one batch", "two batch"} <= {s.name for s in recorded}
    process = [s for s in recorded if s.name.endswith(" process")]
    one = [s for s in process if _attributes(s)["headwater.stage"] == "one"]
    two = [s for s in process if _attributes(s)["headwater.stage"] == "two"]
    intake_trace, intake_id, _ = hex_ids(intake)  # type: ignore[arg-type]
    (one_of_0,) = [s for s in one if hex_ids(s)[0] == intake_trace]
    (two_of_0,) = [s for s in two if hex_ids(s)[0] == intake_trace]
    assert hex_ids(one_of_0)[2] == intake_id and hex_ids(two_of_0)[2] == hex_ids(one_of_0)[1]
    assert two_of_0.status.status_code is StatusCode.UNSET
    (one_of_1,) = [s for s in one if hex_ids(s)[0] != intake_trace]
    assert hex_ids(one_of_1)[2] is None  # a trace of its own, and its next hop stays in it
    two_of_1 = [s for s in two if hex_ids(s)[0] == hex_ids(one_of_1)[0]]
    assert [s.status.status_code for s in two_of_1] == [StatusCode.ERROR]  # dead-lettered


def test_http_requests_continue_the_callers_trace_except_on_webhooks() -> None:
    app = FastAPI(telemetry=tracing.FASTAPI_TELEMETRY)

    @app.post("/v1/documents/{document_id}")
    def accept(document_id: str) -> dict[str, str]:  # sync: runs on a worker thread
        return {"traceparent": tracing.trace_headers().get("traceparent", "")}

    @app.post("/v1/webhooks/{source}")
    def webhook(source: str) -> dict[str, str]:
        return {"traceparent": tracing.trace_headers().get("traceparent", "")}

    app.add_middleware(tracing.TracingMiddleware)
    client = TestClient(app)
    with recording() as exporter:
        with tracer.start_as_current_span("caller") as caller:
            sent = {"traceparent": _traceparent(caller)}
        seen = client.post("/v1/documents/jane.doe@example.com", headers=sent).json()["traceparent"]
        hooked = client.post("/v1/webhooks/crm", headers=sent).json()["traceparent"]

    servers = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    server, webhook_span = sorted(servers, key=lambda s: s.start_time or 0)
    caller_trace, caller_id, _ = hex_ids(caller)  # type: ignore[arg-type]
    assert hex_ids(server)[:3:2] == (caller_trace, caller_id)
    assert seen.split("-")[1:3] == [caller_trace, hex_ids(server)[1]]  # the handler ran inside it
    assert server.name == "POST /v1/documents/{document_id}"  # the route, never the id in the path
    assert "jane.doe" not in json.dumps(dict(server.attributes or {}))
    assert _attributes(server)["http.response.status_code"] == 200
    assert hex_ids(webhook_span)[0] != caller_trace and hex_ids(webhook_span)[2] is None
    assert hooked.split("-")[1] == hex_ids(webhook_span)[0]


def test_the_embedded_change_log_remembers_the_trace_a_change_was_accepted_under() -> None:
    class Log:
        def append(self, event: Any) -> bool:
            return True

    changes = tracing.TracedChangeLog(Log(), capacity=2)
    changes.append(SimpleNamespace(event_id="untraced"))
    with recording(), tracer.start_as_current_span("intake") as intake:
        for event_id in ("a", "b", "c"):
            changes.append(SimpleNamespace(event_id=event_id))
    assert changes.context_of("untraced") is None  # nothing to continue
    assert changes.context_of("a") is None  # beyond capacity: the oldest is forgotten
    remembered = changes.context_of("c")
    assert remembered is not None and trace.get_current_span(remembered) is intake
    assert changes.context_of("c") is None  # handed on once


def _configure_in_subprocess(tmp_path: Path, env: dict[str, str], service: str = "ingest") -> str:
    script = (
        "import sys; from opentelemetry import trace; from headwater.observability import tracing\n"
        f"print(tracing.configure({service!r}))\n"
        "with trace.get_tracer('t').start_as_current_span('work', attributes={'n': 1}): pass\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HEADWATER_TRACES"))}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_without_an_exporter_tracing_stays_a_no_op(tmp_path: Path) -> None:
    assert _configure_in_subprocess(tmp_path, {}) == "False"
    assert _configure_in_subprocess(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) == "False"


def test_a_traces_file_per_service_gets_every_span_with_the_service_name(tmp_path: Path) -> None:
    pattern = str(tmp_path / "traces-{service}.jsonl")
    assert _configure_in_subprocess(tmp_path, {"HEADWATER_TRACES_FILE": pattern}, "graph-builder") == "True"
    (line,) = (tmp_path / "traces-graph-builder.jsonl").read_text().splitlines()
    span = json.loads(line)
    assert (span["name"], span["service"], span["attributes"], span["parent_span_id"]) == (
        "work",
        "headwater-graph-builder",
        {"n": 1},
        None,
    )
    assert len(span["trace_id"]) == 32 and len(span["span_id"]) == 16
    renamed = {"HEADWATER_TRACES_FILE": pattern, "OTEL_SERVICE_NAME": "search-gw"}
    _configure_in_subprocess(tmp_path, renamed, "query")
    assert json.loads((tmp_path / "traces-query.jsonl").read_text())["service"] == "search-gw"


def test_the_sampler_comes_from_otel_traces_sampler(tmp_path: Path) -> None:
    env = {"HEADWATER_TRACES_FILE": str(tmp_path / "t.jsonl"), "OTEL_TRACES_SAMPLER": "always_off"}
    assert _configure_in_subprocess(tmp_path, env) == "True"
    assert not (tmp_path / "t.jsonl").read_text()
