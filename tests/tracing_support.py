"""Spans recorded in the test process: the SDK provider is global and can be set once per process, so
every test adds its own in-memory exporter to the one provider and reads only what it recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def recording_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider


@contextmanager
def recording() -> Iterator[InMemorySpanExporter]:
    """An exporter that keeps the spans ended while the block runs."""
    exporter = InMemorySpanExporter()
    recording_provider().add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        exporter.shutdown()  # the processor stays on the provider; a shut exporter keeps nothing


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) as the JSON span files write them."""
    assert span.context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


def read_span_files(directory: Path) -> list[dict[str, Any]]:
    """Every span the processes wrote to their `HEADWATER_TRACES_FILE`s in `directory`."""
    spans = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.endswith("}"):  # a line still being written is skipped until the next read
                spans.append(json.loads(line))
    return spans


def chain_to_root(spans: list[dict[str, Any]], leaf: dict[str, Any]) -> list[dict[str, Any]]:
    """`leaf` and its ancestors, leaf first, as far as the recorded spans reach."""
    by_id = {s["span_id"]: s for s in spans}
    chain = [leaf]
    while chain[-1]["parent_span_id"] in by_id:
        chain.append(by_id[chain[-1]["parent_span_id"]])
    return chain
