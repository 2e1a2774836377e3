"""Log lines: text for people at a terminal, JSON objects for log collectors (`HEADWATER_LOG_FORMAT`).

A JSON line carries `ts`, `level`, `logger`, `message`, `service`, the `trace_id` and `span_id` of the
span it was written in (when one is active), any `extra` fields, and `exception` for a traceback.
`headwater run` writes JSON by default (its output goes to a collector); the other commands, text.
Log calls name ids, types and counts, never document or query text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

from headwater.observability.config import ObservabilitySettings

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, *, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        # Formatted in the thread that logged, so the current span is the one the line was written in.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    *,
    service: str,
    verbose: bool = False,
    default_format: LogFormat = "text",
    text_format: str = "%(asctime)s %(levelname)s %(name)s: %(message)s",
    quiet: Iterable[str] = (),
    settings: ObservabilitySettings | None = None,
) -> LogFormat:
    """Root logging to stderr in the configured format (`HEADWATER_LOG_FORMAT`, else `default_format`);
    `quiet` loggers are held at ERROR. Like `logging.basicConfig`, a root that has handlers is left."""
    chosen: LogFormat = (settings or ObservabilitySettings()).log_format or default_format
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(service=service) if chosen == "json" else logging.Formatter(text_format)
    )
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    return chosen
