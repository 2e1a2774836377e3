"""One document's trace across the distributed runtime: every service a real `headwater run` process
writing its spans to its own file (`HEADWATER_TRACES_FILE`), the trace context carried from hop to hop
in Kafka headers. The spans of the document, from the intake request to the indexer, share the trace
id the client sent, and each hop is the parent of the next; a search has a span per retriever. The
processes' JSON logs and spans hold none of the document's personal data."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from headwater.stack.pipeline import LocalPipeline
from tests.e2e.distributed.conftest import search, wait_for
from tests.tracing_support import chain_to_root, read_span_files

PII = ("Margaret Holloway", "Holloway", "margaret.holloway@example.org", "(415) 555-0199", "078-05-1120")
NOTE = (
    "Onboarding note. Margaret Holloway starts in the platform team on Monday; reach her at "
    "margaret.holloway@example.org or (415) 555-0199. Payroll has her SSN 078-05-1120 on file."
)


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _spans_named(directory: Path, name: str, trace_id: str) -> list[dict[str, Any]]:
    return [s for s in read_span_files(directory) if s["name"] == name and s["trace_id"] == trace_id]


def test_one_documents_spans_from_intake_to_indexer_share_one_trace(
    make_pipeline: Callable[..., LocalPipeline], tmp_path: Path
) -> None:
    traces = tmp_path / "traces"
    pipeline = make_pipeline(env={"HEADWATER_TRACES_FILE": str(traces / "{service}.jsonl")})
    pipeline.start_all()

    trace_id, caller, traceparent = _traceparent()
    accepted = httpx.post(
        f"{pipeline.url('ingest')}/v1/documents",
        json={"tenant": "acme", "document_id": "onboarding-17", "version": 1, "text": NOTE},
        headers={"traceparent": traceparent},
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
    wait_for(
        lambda: any(h["document_id"] == "onboarding-17" for h in search(pipeline, "acme", "platform team")),
        what="the document to be searchable",
    )
    wait_for(lambda: bool(_spans_named(traces, "indexer process", trace_id)), what="the indexer's span")

    spans = read_span_files(traces)
    chain = chain_to_root(spans, _spans_named(traces, "indexer process", trace_id)[0])
    assert [(s["service"], s["name"]) for s in chain] == [
        ("headwater-index-node", "indexer process"),
        ("headwater-graph-builder", "graph_builder process"),
        ("headwater-embedder", "embedder process"),
        ("headwater-chunker", "chunker process"),
        ("headwater-ingest", "ingest process"),
        ("headwater-ingest", "intake accept"),
        ("headwater-ingest", "POST /v1/documents"),
    ]
    assert {s["trace_id"] for s in chain} == {trace_id}
    assert chain[-1]["parent_span_id"] == caller  # the client's span: the request continued its trace
    assert chain[0]["attributes"]["messaging.kafka.message.key"] == "acme/onboarding-17"

    search_trace, search_caller, search_parent = _traceparent()
    found = httpx.post(
        f"{pipeline.url('index-node')}/v1/search",
        json={"tenant": "acme", "query": "Margaret Holloway onboarding", "top_k": 5},
        headers={"traceparent": search_parent},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    wait_for(lambda: bool(_spans_named(traces, "POST /v1/search", search_trace)), what="the search span")
    spans = read_span_files(traces)
    (query,) = _spans_named(traces, "query search", search_trace)
    (request,) = _spans_named(traces, "POST /v1/search", search_trace)
    assert (query["parent_span_id"], request["parent_span_id"]) == (request["span_id"], search_caller)
    children = {s["name"] for s in spans if s["parent_span_id"] == query["span_id"]}
    assert children == {"query dense", "query sparse", "query fusion"}

    pipeline.stop_all()  # flushes and closes every log
    logs = {path.name: path.read_text(errors="replace") for path in pipeline.home.glob("*.log")}
    assert set(logs) >= {"ingest.log", "chunker.log", "embedder.log", "graph-builder.log", "index-node.log"}
    exported = "\n".join(path.read_text() for path in traces.glob("*.jsonl"))
    for secret in PII:
        assert secret not in exported, f"a span holds {secret!r}"
        leaks = [name for name, text in logs.items() if secret in text]
        assert not leaks, f"{leaks} log {secret!r}"
    for name, text in logs.items():
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert any(line["message"].startswith("service ") for line in lines), f"{name}: no JSON lines"
        assert all({"ts", "level", "logger", "service"} <= set(line) for line in lines), name
    search_lines = [
        json.loads(line) for line in logs["index-node.log"].splitlines() if "headwater.query" in line
    ]
    assert search_trace in {line.get("trace_id") for line in search_lines}  # the search log names its trace
