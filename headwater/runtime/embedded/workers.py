"""A stage worker: takes batches from a bounded inbox, processes them, forwards results in order.

Failure semantics are `batches.run_batch`'s: transient errors are retried with backoff, bounded;
anything else, or a transient error that outlives its retries, dead-letters the one message that
caused it and the rest flow on.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from pydantic import BaseModel

from headwater.observability import tracing
from headwater.observability.metrics import StageMeter
from headwater.runtime.batches import BatchRetryPolicy, run_batch
from schemas import DeadLetter

logger = logging.getLogger(__name__)

Process = Callable[[list[Any]], Sequence[Any]]


@dataclass(frozen=True)
class Envelope:
    """A message in flight plus the journal position it came from (completed at the last stage), and
    the trace it belongs to (the previous stage's span of it; None: the next stage starts a trace)."""

    seq: int
    message: Any
    trace: Context | None = None


@dataclass
class StageStats:
    processed: int = 0
    dead_lettered: int = 0
    retries: int = 0
    busy_seconds: float = 0.0


class StageWorker(threading.Thread):
    def __init__(
        self,
        *,
        name: str,
        inbox: queue.Queue[Envelope],
        process: Process,
        emit: Callable[[list[Envelope]], None],
        dead_letter: Callable[[str, Envelope, BaseException, int], None],
        batch_size: int,
        transient: tuple[type[BaseException], ...],
        max_attempts: int,
        stop: threading.Event,
        backoff_seconds: float = 0.2,
    ) -> None:
        super().__init__(name=f"stage-{name}", daemon=True)
        self.stage = name
        self.inbox = inbox
        self.metrics = StageMeter(name)
        self._process = self.metrics.counting_failures(process, transient)
        self._emit = emit
        self._dead_letter = dead_letter
        self._batch_size = batch_size
        self._policy = BatchRetryPolicy(
            transient=transient, max_attempts=max_attempts, backoff_s=backoff_seconds
        )
        self._halt = stop
        self.stats = StageStats()
        self.in_flight = 0

    def run(self) -> None:
        while not self._halt.is_set():
            batch = self._take()
            if not batch:
                continue
            self.in_flight = len(batch)
            self.metrics.received(len(batch))
            before = dataclasses.replace(self.stats)
            started = time.perf_counter()
            try:
                self._handle(batch)
            except Exception:  # a bug in emit/dead-letter plumbing must not kill the stage silently
                logger.exception("stage %s failed to hand on a batch", self.stage)
            finally:
                self.stats.busy_seconds += time.perf_counter() - started
                self.in_flight = 0
                self._count(before, seconds=time.perf_counter() - started)

    def _count(self, before: StageStats, *, seconds: float) -> None:
        """The batch's share of `stats`, as metrics (the embedded runtime never rewinds a batch)."""
        self.metrics.retried(self.stats.retries - before.retries)
        self.metrics.completed(
            self.stats.processed - before.processed,
            dead_lettered=self.stats.dead_lettered - before.dead_lettered,
        )
        self.metrics.batch_done(seconds)
        self.metrics.idle()

    def _take(self) -> list[Envelope]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list[Envelope]) -> None:
        spans = tracing.StageSpans.open(
            self.stage,
            {i: e.trace for i, e in enumerate(batch)},
            attributes={i: tracing.document_attributes(e.message) for i, e in enumerate(batch)},
        )
        try:
            outcome = run_batch(
                [e.message for e in batch],
                self._process,
                policy=self._policy,
                isolate_transient=True,
                stopping=self._halt.is_set,
            )
            self.stats.retries += outcome.retries
            logger.debug(
                "stage %s: batch of %d, %d done, %d dead-lettered, %d retries",
                self.stage,
                len(batch),
                len(outcome.results),
                len(outcome.failures),
                outcome.retries,
            )
            for position, error in sorted(outcome.failures.items()):
                spans.failed(position, error)
                self.stats.dead_lettered += 1
                self._dead_letter(self.stage, batch[position], error, self._policy.max_attempts)
            # The next stage's spans of these messages are children of this stage's.
            survivors = [
                Envelope(batch[i].seq, result, spans.context(i))
                for i, result in sorted(outcome.results.items())
            ]
        finally:
            spans.close()  # before handing on: a full queue downstream is not this stage's time
        self.stats.processed += len(survivors)
        if survivors:
            self._emit(survivors)


def dead_letter_for(
    *, stage: str, source: str, message: Any, error: BaseException, attempts: int
) -> DeadLetter:
    """A dead letter holding the message as it entered the stage, and the reason it was given up."""
    payload = message.model_dump_json().encode() if isinstance(message, BaseModel) else repr(message).encode()
    key = None
    if hasattr(message, "tenant") and hasattr(message, "document_id"):
        key = f"{message.tenant}/{message.document_id}"
    return DeadLetter(
        stage=stage,
        source_topic=source,
        error_type=type(error).__name__,
        reason=str(error)[:2000] or type(error).__name__,
        attempts=attempts,
        key=key,
        payload_base64=base64.b64encode(payload).decode(),
    )
