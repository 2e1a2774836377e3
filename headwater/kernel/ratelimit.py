"""Per-key rate limiting: a token bucket per API key, on an injected clock."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`per_second` requests on average, up to `burst` at once."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)) or self.burst < 1:
            raise ValueError("a rate limit needs a positive, finite rate and a burst of at least 1")

    @classmethod
    def of(cls, per_second: float, burst: int | None = None) -> RateLimit:
        """A limit whose burst defaults to two seconds' worth of requests."""
        return cls(per_second, burst if burst is not None else max(1, math.ceil(2 * per_second)))


@dataclass(slots=True)
class TokenBucket:
    """Holds up to `limit.burst` tokens, refilled at `limit.per_second`; a request takes one."""

    limit: RateLimit
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available (nothing taken)."""
        elapsed = max(0.0, now - self.updated)  # a clock that steps back never mints tokens
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_second


class RateLimiter:
    """One bucket per key, in this process: N gateway replicas allow N times the rate in total."""

    def __init__(self, *, default: RateLimit, clock: Clock = time.monotonic) -> None:
        self.default = default
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, limit: RateLimit | None = None) -> float:
        """Spend one request of `key`'s budget: 0.0 when allowed, else seconds to wait."""
        limit = limit or self.default
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(limit, tokens=float(limit.burst), updated=now)
            elif bucket.limit != limit:  # the key's limit was changed: keep what it had, within the new burst
                bucket.limit = limit
                bucket.tokens = min(bucket.tokens, float(limit.burst))
            return bucket.take(now)


def retry_after_seconds(wait: float) -> int:
    """The `Retry-After` value for a wait: whole seconds, at least 1."""
    return max(1, math.ceil(wait))
