"""PII redaction stage: Presidio + spaCy findings replaced by deterministic per-tenant pseudonyms."""

from services.ingest.redaction.documents import redact_documents
from services.ingest.redaction.engine import get_engine
from services.ingest.redaction.policy import DEFAULT_ENTITIES, MENTION_LABELS, RedactionPolicy
from services.ingest.redaction.redactor import Mention, RedactedText, Redactor

__all__ = [
    "DEFAULT_ENTITIES",
    "MENTION_LABELS",
    "Mention",
    "RedactedText",
    "RedactionPolicy",
    "Redactor",
    "get_engine",
    "redact_documents",
]
