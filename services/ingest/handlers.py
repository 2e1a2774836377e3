"""The redaction stage's handler, called alike by the embedded runtime's thread and the Kafka consumer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from headwater.observability import metrics
from schemas import DocumentChanged, DocumentRedacted
from services.ingest.redaction.documents import redact_documents
from services.ingest.redaction.redactor import Redactor


@dataclass
class RedactStage:
    """Changes in, redacted changes out; counts the PII it replaced by type."""

    redactor: Redactor
    pii_counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, events: list[DocumentChanged]) -> list[DocumentRedacted]:
        redacted = redact_documents(events, redactor=self.redactor)
        for doc in redacted:
            self.pii_counts.update(doc.pii_counts)
            metrics.count_pii(doc.pii_counts)
        return redacted
