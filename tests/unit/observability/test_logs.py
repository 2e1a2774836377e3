"""JSON log lines: one object per line, with the trace and span they were written in."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from opentelemetry import trace

from headwater.observability.config import ObservabilitySettings
from headwater.observability.logs import JsonFormatter, configure_logging
from tests.tracing_support import hex_ids, recording


def _lines(emit: Any) -> list[dict[str, Any]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="chunker"))
    logger = logging.getLogger("test.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("\n") == len(text.splitlines())  # one object per line, multi-line tracebacks too
    return [json.loads(line) for line in text.splitlines()]


def test_a_line_carries_the_fields_and_the_extras() -> None:
    (line,) = _lines(
        lambda log: log.warning("stage %s dead-lettered %s", "chunker", "acme/a", extra={"n": 3})
    )
    assert line.pop("ts").endswith("+00:00")
    assert line == {
        "level": "WARNING",
        "logger": "test.json_logs",
        "message": "stage chunker dead-lettered acme/a",
        "service": "chunker",
        "n": 3,
    }


def test_a_line_written_inside_a_span_names_its_trace_and_span() -> None:
    with recording(), trace.get_tracer(__name__).start_as_current_span("work") as span:
        (inside,) = _lines(lambda log: log.info("inside"))
    (outside,) = _lines(lambda log: log.info("outside"))
    trace_id, span_id, _ = hex_ids(span)  # type: ignore[arg-type]
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert "trace_id" not in outside and "span_id" not in outside


def test_an_exception_stays_on_its_line() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise TimeoutError("backend slow")
        except TimeoutError:
            log.exception("batch failed")

    (line,) = _lines(emit)
    assert line["message"] == "batch failed"
    assert "TimeoutError: backend slow" in line["exception"] and "Traceback" in line["exception"]


@pytest.mark.parametrize(
    ("configured", "default", "expected"),
    [(None, "json", "json"), (None, "text", "text"), ("text", "json", "text"), ("json", "text", "json")],
)
def test_the_format_is_the_settings_else_the_commands_default(
    configured: Any, default: Any, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process; restored afterwards
    monkeypatch.setattr(root, "level", root.level)
    chosen = configure_logging(
        service="ingest",
        default_format=default,
        quiet=("test.noisy",),
        settings=ObservabilitySettings(log_format=configured),
    )
    (handler,) = root.handlers
    assert chosen == expected
    assert isinstance(handler.formatter, JsonFormatter) == (expected == "json")
    assert logging.getLogger("test.noisy").level == logging.ERROR
