"""One retry policy for every outbound HTTP call (TEI, OpenAI-compatible APIs, rerankers): exponential
backoff with full jitter, Retry-After honoured, and two errors a caller maps into its own."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

logger = logging.getLogger(__name__)


class RetriesExhausted(Exception):
    """Every attempt failed in a way that may pass later (timeouts, refused connections, 5xx)."""


class BadEndpoint(Exception):
    """The URL itself is unusable; retrying cannot help."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets and how long to wait between them."""

    max_attempts: int = 5
    backoff: float = 0.5  # seconds; the cap of the first wait, doubled on each attempt
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a server asking for longer is treated as down, not waited on forever
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)  # injected so tests never sleep
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Retry-After when the server sent one, else full jitter: uniform in [0, min(cap, base·2^n)]."""
        hinted = retry_after(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        return float(self.random() * min(self.max_backoff, self.backoff * 2**attempt))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds asked by a `Retry-After` header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def send_with_retries(
    send: Callable[[], httpx.Response], *, policy: RetryPolicy, retry_statuses: Collection[int], what: str
) -> httpx.Response:
    """Send until a response that is not retryable; transport errors, 5xx and `retry_statuses` are retried."""
    last = "no attempt made"
    for attempt in range(policy.max_attempts):
        response: httpx.Response | None = None
        try:
            response = send()
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise BadEndpoint(f"{what}: bad URL: {exc}") from exc
        except httpx.RequestError as exc:  # timeouts, refused or reset connections, protocol errors
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code not in retry_statuses and response.status_code < 500:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        if attempt + 1 < policy.max_attempts:
            wait = policy.delay(attempt, response)
            logger.warning("%s failed (%s); retry %d in %.2f s", what, last, attempt + 1, wait)
            policy.sleep(wait)
    raise RetriesExhausted(f"{what} failed after {policy.max_attempts} attempts: {last}")
