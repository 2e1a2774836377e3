"""The search log: one line per search, naming the caller, the outcome and the query's length, never
its text: a query may name a person, and names are not caught by a pattern (see docs/operations.md).
"""

from __future__ import annotations

import logging

from schemas import SearchPage, SearchRequest
from services.query.access import Caller

logger = logging.getLogger("headwater.query")


def log_search(*, caller: Caller | None, request: SearchRequest, page: SearchPage) -> None:
    """One INFO line per search; never the query's text."""
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "search key=%s tenant=%s mode=%s hits=%d took_ms=%.1f query_chars=%d",
        caller.key_id if caller else "-",
        request.tenant,
        request.mode.value,
        len(page.hits),
        page.took_ms,
        len(request.query),
    )


def log_refusal(*, status: int, reason: str, key_id: str | None = None) -> None:
    """A refused search (401, 403, 429): which key and why, nothing the caller sent."""
    logger.warning("search refused status=%d key=%s reason=%s", status, key_id or "-", reason)
