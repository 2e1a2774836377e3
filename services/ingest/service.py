"""Intake: normalise a command and make the change durable before acknowledging it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas import Accepted, IngestDocument
from schemas.common import utc_now
from schemas.documents import MAX_DOCUMENT_BYTES
from services.ingest.logic import normalise
from services.ingest.ports import ChangeLog


@dataclass
class IntakeService:
    changes: ChangeLog
    clock: Callable[[], datetime] = utc_now
    max_bytes: int = MAX_DOCUMENT_BYTES
    on_accepted: Callable[[], None] | None = None  # wakes the pipeline in the embedded runtime

    def accept(self, command: IngestDocument, *, received_at: datetime | None = None) -> Accepted:
        """Durably accept one change (idempotent: the same change twice is stored once). A retried
        webhook passes its first `received_at`, so a defaulted version comes out the same."""
        event = normalise(command, received_at=received_at or self.clock(), max_bytes=self.max_bytes)
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
