"""Intake's durable log on Kafka: the distributed runtime's `ChangeLog`."""

from __future__ import annotations

import asyncio
import threading
import time

from faststream.kafka import KafkaBroker

from headwater.config import KafkaSettings
from headwater.observability import metrics, tracing
from headwater.runtime.distributed import codec
from schemas import DocumentChanged
from schemas.topics import DOCUMENTS
from services.ingest.errors import IntakeUnavailable


class KafkaChangeLog:
    """Intake's durable log on Kafka: `append` returns once the broker has acknowledged the record.

    Called from request threads; the producer lives on the event loop. In-flight sends are bounded
    (aiokafka has no `buffer.memory`), and a send the broker does not acknowledge in time is refused
    with 503: the sender retries, and a duplicate is harmless downstream (same version, a no-op).
    """

    def __init__(self, broker: KafkaBroker, loop: asyncio.AbstractEventLoop, kafka: KafkaSettings) -> None:
        self._broker = broker
        self._loop = loop
        self._kafka = kafka
        self._topic = kafka.topic(DOCUMENTS.name)
        self._slots = threading.BoundedSemaphore(kafka.max_pending_sends)

    def append(self, event: DocumentChanged) -> bool:
        if not self._slots.acquire(blocking=False):
            metrics.INTAKE.labels("refused").inc()
            raise IntakeUnavailable("too many changes waiting for the broker; retry shortly", retry_after=1)
        try:
            key, value = codec.encode(event)
            # The intake span is current (this is the request's thread): the record starts its trace.
            headers = {codec.ACCEPTED_AT: str(int(time.time() * 1000)), **tracing.trace_headers()}
            sent = asyncio.run_coroutine_threadsafe(
                self._broker.publish(value, self._topic, key=key, headers=headers), self._loop
            )
            try:
                sent.result(timeout=self._kafka.send_timeout_s)
            except Exception as exc:
                sent.cancel()
                metrics.INTAKE.labels("unavailable").inc()
                raise IntakeUnavailable(
                    f"the broker did not acknowledge the change ({type(exc).__name__}); nothing was accepted",
                    retry_after=max(1, round(self._kafka.pause_s)),
                ) from exc
        finally:
            self._slots.release()
        metrics.INTAKE.labels("accepted").inc()
        return True
