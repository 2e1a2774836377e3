"""The search log: one line per search, with the query's identifiers masked before it is written.

The ingest recognizers are tuned for precision, so that redacted documents stay readable, and they
load Presidio, which imports spaCy, transformers and torch. A log needs the opposite trade-off: any
long digit run, e-mail, IBAN or IP address is masked, even when it is a date or an order number.
Names need NER and are not caught here (see docs/operations.md).
"""

from __future__ import annotations

import logging
import re

from schemas import SearchPage, SearchRequest
from services.query.access import Caller

logger = logging.getLogger("headwater.query")

LOGGED_QUERY_CHARS = 200

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<EMAIL>"),
    # ISO 13616 shape: country, check digits, 11-30 alphanumerics in groups. Upper case only, or it
    # would take ordinary words; the digits of a lower-case IBAN are still masked as a number below.
    (re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b"), "<IBAN>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<IP>"),
    # IPv6, full or with "::" (so that times such as 10:30:00 are left alone).
    (
        re.compile(
            r"\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b"
            r"|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,5})?(?![0-9a-f:])",
            re.IGNORECASE,
        ),
        "<IP>",
    ),
    # Phones, cards, SSNs, account numbers: six or more digits, whatever joins them.
    (re.compile(r"\+?(?:\d[\s().\-/]{0,3}){5,}\d"), "<NUMBER>"),
)


def redact_for_log(text: str, *, limit: int = LOGGED_QUERY_CHARS) -> str:
    """The query as it may appear in a log: identifiers masked, then cut to `limit` characters."""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    text = " ".join(text.split())  # no newlines: one search, one log line
    return text if len(text) <= limit else text[:limit] + "…"


def log_search(*, caller: Caller | None, request: SearchRequest, page: SearchPage) -> None:
    """One INFO line per search; never the raw query."""
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "search key=%s tenant=%s mode=%s hits=%d took_ms=%.1f query=%r",
        caller.key_id if caller else "-",
        request.tenant,
        request.mode.value,
        len(page.hits),
        page.took_ms,
        redact_for_log(request.query),
    )


def log_refusal(*, status: int, reason: str, key_id: str | None = None) -> None:
    """A refused search (401, 403, 429): which key and why, nothing the caller sent."""
    logger.warning("search refused status=%d key=%s reason=%s", status, key_id or "-", reason)
