"""Running one batch through a stage handler: retries for transient failures, isolation of poison.

Both runtimes use this. A transient error (a backend timing out, a database restarting) is retried
with exponential backoff and full jitter, a bounded number of times. Any other error means some
message in the batch is bad: the batch is retried message by message so only that one is given up.
What happens to a batch that is still failing transiently is the caller's choice (`isolate_transient`):
the embedded runtime dead-letters its messages one by one, the Kafka runtime leaves them uncommitted
and pauses, because a downstream outage is not the messages' fault.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[list[Any]], Sequence[Any]]


@dataclass
class BatchOutcome:
    """Per message, by its index in the batch: a result, or the error it was given up with."""

    results: dict[int, Any] = field(default_factory=dict)
    failures: dict[int, BaseException] = field(default_factory=dict)
    unavailable: BaseException | None = None  # the whole batch failed transiently; nothing was given up
    retries: int = 0


@dataclass(frozen=True)
class BatchRetryPolicy:
    transient: tuple[type[BaseException], ...]
    max_attempts: int
    backoff_s: float = 0.2

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform over [0, base·2^(attempt-1)]."""
        return random.uniform(0, self.backoff_s * 2 ** (attempt - 1))  # noqa: S311 - jitter, not crypto


def run_batch(
    messages: list[Any],
    handler: Handler,
    *,
    policy: BatchRetryPolicy,
    isolate_transient: bool,
    stopping: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchOutcome:
    outcome = BatchOutcome()
    try:
        results = _with_retries(messages, handler, policy, outcome, stopping, sleep)
    except Exception as exc:
        if isinstance(exc, policy.transient) and not isolate_transient:
            outcome.unavailable = exc
            return outcome
        if len(messages) == 1:  # already tried alone, retries included
            outcome.failures[0] = exc
            return outcome
    else:
        outcome.results = dict(enumerate(results))
        return outcome
    for position, message in enumerate(messages):
        _isolate(position, message, handler, policy, outcome, stopping, sleep)
    return outcome


def _isolate(
    position: int,
    message: Any,
    handler: Handler,
    policy: BatchRetryPolicy,
    outcome: BatchOutcome,
    stopping: Callable[[], bool],
    sleep: Callable[[float], None],
) -> None:
    try:
        (result,) = _with_retries([message], handler, policy, outcome, stopping, sleep)
    except Exception as exc:
        outcome.failures[position] = exc
    else:
        outcome.results[position] = result


def _with_retries(
    messages: list[Any],
    handler: Handler,
    policy: BatchRetryPolicy,
    outcome: BatchOutcome,
    stopping: Callable[[], bool],
    sleep: Callable[[float], None],
) -> Sequence[Any]:
    attempt = 1
    while True:
        try:
            results = handler(messages)
        except policy.transient:
            if attempt >= policy.max_attempts or stopping():
                raise
            outcome.retries += 1
            sleep(policy.delay(attempt))
            attempt += 1
            continue
        if len(results) != len(messages):
            raise RuntimeError(f"the handler returned {len(results)} results for {len(messages)} messages")
        return results
