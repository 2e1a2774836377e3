"""Traces and logs of the embedded runtime: one document's stages continue its intake trace, one search
has a span per retriever, and neither the spans nor the most verbose logs hold the document's PII."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from headwater.observability.logs import JsonFormatter
from headwater.observability.span_file import span_record
from schemas import IngestDocument, SearchMode, SearchRequest
from tests.e2e.conftest import RuntimeFactory
from tests.tracing_support import chain_to_root, recording

PII = ("Margaret Holloway", "margaret.holloway@example.org", "(415) 555-0199", "078-05-1120")
NOTE = (
    "Onboarding note. Margaret Holloway starts in the platform team on Monday; reach her at "
    "margaret.holloway@example.org or (415) 555-0199. Payroll has her SSN 078-05-1120 on file."
)
STAGES = ["indexer", "graph_builder", "embedder", "chunker", "ingest"]
# Third-party loggers every command holds at ERROR (headwater/cli/common.py, headwater/cli/pipeline.py).
QUIETED = ("presidio-analyzer", "presidio-anonymizer", "sentence_transformers", "httpx")


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, as JSON lines: the most a production process could write."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="embedded"))
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *QUIETED)}
    root.addHandler(handler)
    # setLevel, not an attribute patch: it also clears the loggers' cached isEnabledFor answers, which
    # an earlier test in this process left at WARNING.
    root.setLevel(logging.DEBUG)
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_one_documents_stage_spans_continue_its_intake_trace_without_its_pii(
    make_runtime: RuntimeFactory, debug_log: io.StringIO
) -> None:
    with recording() as exporter:
        runtime = make_runtime()
        runtime.intake.accept(
            IngestDocument(tenant="acme", document_id="onboarding-17", text=NOTE, version=1)
        )
        assert runtime.wait_idle(timeout=120)
        page = runtime.query.search(
            SearchRequest(tenant="acme", query="Margaret Holloway platform team", mode=SearchMode.HYBRID)
        )
        assert page.hits and page.hits[0].document_id == "onboarding-17"
        spans = [span_record(s) for s in exporter.get_finished_spans()]

    (intake,) = [s for s in spans if s["name"] == "intake accept"]
    assert intake["attributes"]["headwater.document_id"] == "onboarding-17"
    (indexed,) = [s for s in spans if s["name"] == "indexer process" and s["trace_id"] == intake["trace_id"]]
    chain = chain_to_root(spans, indexed)
    # indexer → graph_builder → embedder → chunker → ingest → intake: each hop the parent of the next.
    assert [s["attributes"].get("headwater.stage") for s in chain[:5]] == STAGES
    assert chain[5] is intake and len(chain) == 6
    assert {s["trace_id"] for s in chain} == {intake["trace_id"]}
    assert all(s["attributes"]["headwater.document_id"] == "onboarding-17" for s in chain[:5])

    (search,) = [s for s in spans if s["name"] == "query search"]
    children = {s["name"] for s in spans if s["parent_span_id"] == search["span_id"]}
    assert children == {"query dense", "query sparse", "query fusion"}
    assert search["attributes"]["headwater.query.mode"] == "hybrid"

    exported = json.dumps(spans)
    logged = debug_log.getvalue()
    for secret in (*PII, "Holloway"):  # a surname alone too
        assert secret not in exported, f"a span holds {secret!r}"
        assert secret not in logged, f"the log holds {secret!r}"
    lines = [json.loads(line) for line in logged.splitlines()]
    assert lines, "DEBUG logging was on: the stages must have written something"
    batches = {s["trace_id"] for s in spans if s["name"].endswith(" batch")}
    assert any(line.get("trace_id") in batches for line in lines), "stage logs name their batch's trace"
