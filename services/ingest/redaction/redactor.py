"""Redaction of batches of texts: one spaCy pass, Presidio recognizers, per-tenant pseudonyms."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from presidio_analyzer import RecognizerResult
from spacy.tokens import Doc

from services.ingest.redaction.engine import LANGUAGE, Engine, get_engine
from services.ingest.redaction.policy import (
    CREDIT_CARD,
    EMAIL_ADDRESS,
    IBAN_CODE,
    IP_ADDRESS,
    PERSON,
    PHONE_NUMBER,
    STREET_ADDRESS,
    US_SSN,
    RedactionPolicy,
)
from services.ingest.redaction.pseudonyms import placeholder, tenant_key

logger = logging.getLogger(__name__)

MIN_SECRET_BYTES = 16
# spaCy refuses texts over 1M characters and its memory grows with length; longer texts are cut at
# line breaks into segments redacted one by one.
MAX_SEGMENT_CHARS = 100_000
NLP_BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class Mention:
    """A named entity in the redacted text: `text == redacted[start:end]`."""

    label: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RedactedText:
    """A text with its PII replaced, what was replaced (counts only) and the entities left for the graph."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)
    mentions: list[Mention] = field(default_factory=list)


# When two detectors claim one span with equal confidence, the narrower identifier type wins.
_PRIORITY = {
    entity: rank
    for rank, entity in enumerate(
        (US_SSN, CREDIT_CARD, IBAN_CODE, EMAIL_ADDRESS, IP_ADDRESS, PHONE_NUMBER, STREET_ADDRESS, PERSON)
    )
}


@dataclass(frozen=True, slots=True)
class _Span:
    entity: str
    start: int
    end: int
    score: float


class Redactor:
    """Replaces PII with pseudonyms that are stable within a tenant and differ across tenants."""

    def __init__(self, *, secret: bytes, policy: RedactionPolicy | None = None, engine: Engine | None = None):
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the pseudonym secret must have at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.policy = policy or RedactionPolicy()
        self._engine = engine or get_engine()
        self._entities = sorted(self.policy.entities)
        self._floor = min([self.policy.default_threshold, *self.policy.thresholds.values()])

    def redact(self, text: str, *, tenant: str) -> RedactedText:
        """Redact one text; prefer `redact_batch` for throughput."""
        return self.redact_batch([text], tenant=tenant)[0]

    def redact_batch(self, texts: Sequence[str], *, tenant: str) -> list[RedactedText]:
        """Redact texts of one tenant with a single spaCy pass over the whole batch."""
        if not tenant:
            raise ValueError("a tenant is required: pseudonyms are keyed per tenant")
        key = tenant_key(secret=self._secret, tenant=tenant)
        segments: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for segment in _segments(text):
                segments.append(segment)
                owners.append(index)
        engine = self._engine
        docs = engine.nlp.pipe(segments, disable=engine.disabled_pipes, batch_size=NLP_BATCH_SIZE)
        parts: list[list[RedactedText]] = [[] for _ in texts]
        for owner, segment, doc in zip(owners, segments, docs, strict=True):
            parts[owner].append(self._redact_doc(segment, doc, key=key))
        results = [_join(pieces) for pieces in parts]
        if logger.isEnabledFor(logging.DEBUG):
            total: Counter[str] = Counter()
            for result in results:
                total.update(result.counts)
            # Counts and sizes only: never a value or a piece of text.
            logger.debug("redacted %d texts (%d chars): %s", len(texts), sum(map(len, texts)), dict(total))
        return results

    def _redact_doc(self, text: str, doc: Doc, *, key: bytes) -> RedactedText:
        findings = self._engine.analyzer.analyze(
            text=text,
            language=LANGUAGE,
            entities=self._entities,
            nlp_artifacts=self._engine.artifacts(doc),
            score_threshold=self._floor,
        )
        spans = _merge(
            [_Span(r.entity_type, r.start, r.end, r.score) for r in findings if self._kept(r)], text=text
        )
        pieces: list[str] = []
        mentions: list[Mention] = []
        counts: Counter[str] = Counter()
        ends: list[int] = []  # original end of each replaced span
        shifts: list[int] = []  # how far text after that end moved
        cursor = shift = 0
        for span in spans:
            replacement = placeholder(key=key, entity=span.entity, value=text[span.start : span.end])
            pieces += [text[cursor : span.start], replacement]
            counts[span.entity] += 1
            if span.entity == PERSON:
                start = span.start + shift
                mentions.append(Mention(PERSON, replacement, start, start + len(replacement)))
            shift += len(replacement) - (span.end - span.start)
            ends.append(span.end)
            shifts.append(shift)
            cursor = span.end
        pieces.append(text[cursor:])
        for entity in doc.ents:
            if entity.label_ not in self.policy.mention_labels:
                continue
            before = bisect_right(ends, entity.start_char)
            if before < len(spans) and spans[before].start < entity.end_char:
                continue  # the entity overlaps redacted PII: it is gone, and so is its mention
            moved = shifts[before - 1] if before else 0
            start = entity.start_char + moved
            mentions.append(Mention(entity.label_, entity.text, start, start + len(entity.text)))
        mentions.sort(key=lambda mention: mention.start)
        return RedactedText(text="".join(pieces), counts=dict(counts), mentions=mentions)

    def _kept(self, finding: RecognizerResult) -> bool:
        entity: str = finding.entity_type
        return entity in self.policy.entities and finding.score >= self.policy.threshold_for(entity)


def _segments(text: str) -> list[str]:
    """Cut a long text at line breaks (else spaces) into pieces spaCy accepts; short texts stay whole."""
    pieces = []
    while len(text) > MAX_SEGMENT_CHARS:
        cut = text.rfind("\n", 0, MAX_SEGMENT_CHARS)
        if cut <= 0:
            cut = text.rfind(" ", 0, MAX_SEGMENT_CHARS)
        cut = cut + 1 if cut > 0 else MAX_SEGMENT_CHARS
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


def _join(parts: list[RedactedText]) -> RedactedText:
    """Stitch the segments of one text back together, moving mention offsets along."""
    if len(parts) == 1:
        return parts[0]
    counts: Counter[str] = Counter()
    mentions: list[Mention] = []
    offset = 0
    for part in parts:
        counts.update(part.counts)
        mentions += [Mention(m.label, m.text, m.start + offset, m.end + offset) for m in part.mentions]
        offset += len(part.text)
    return RedactedText(text="".join(part.text for part in parts), counts=dict(counts), mentions=mentions)


def _merge(spans: list[_Span], *, text: str) -> list[_Span]:
    """Overlapping findings become one span, labelled by the most confident; adjacent names join."""
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        last = merged[-1] if merged else None
        touching_names = (
            last is not None
            and span.entity == PERSON == last.entity
            and text[last.end : span.start].strip(" ") == ""
        )
        if last is not None and (span.start < last.end or touching_names):
            best = max(last, span, key=lambda s: (s.score, -_PRIORITY.get(s.entity, len(_PRIORITY))))
            merged[-1] = _Span(best.entity, last.start, max(last.end, span.end), max(last.score, span.score))
        else:
            merged.append(span)
    return merged
