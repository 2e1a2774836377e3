"""Intake: normalise a command and make the change durable before acknowledging it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from opentelemetry import trace

from schemas import Accepted, IngestDocument
from schemas.common import utc_now
from schemas.documents import MAX_DOCUMENT_BYTES
from services.ingest.logic import normalise
from services.ingest.ports import ChangeLog

tracer = trace.get_tracer(__name__)


@dataclass
class IntakeService:
    changes: ChangeLog
    clock: Callable[[], datetime] = utc_now
    max_bytes: int = MAX_DOCUMENT_BYTES
    on_accepted: Callable[[], None] | None = None  # wakes the pipeline in the embedded runtime

    def accept(self, command: IngestDocument, *, received_at: datetime | None = None) -> Accepted:
        """Durably accept one change (idempotent: the same change twice is stored once). A retried
        webhook passes its first `received_at`, so a defaulted version comes out the same."""
        # The root of the document's trace (or a child of the caller's): the change log hands it on.
        # Errors are not recorded on it: their messages may quote the document (the HTTP span has the status).
        with tracer.start_as_current_span(
            "intake accept",
            kind=trace.SpanKind.PRODUCER,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            event = normalise(command, received_at=received_at or self.clock(), max_bytes=self.max_bytes)
            span.set_attributes(
                {
                    "headwater.tenant": event.tenant,
                    "headwater.document_id": event.document_id,
                    "headwater.version": event.version,
                    "headwater.op": event.op.value,
                }
            )
            self.changes.append(event)
        if self.on_accepted:
            self.on_accepted()
        return Accepted(
            event_id=event.event_id,
            tenant=event.tenant,
            document_id=event.document_id,
            version=event.version,
            accepted_at=event.occurred_at,
        )
