"""A stage as a Kafka consumer group: fetch a bounded batch, run the stage handler, publish, commit.

Delivery is at-least-once and the effects are idempotent, so redelivery is harmless:
- auto-commit is off (FastStream `AckPolicy.MANUAL`); the offset is committed only after every output
  record and every dead letter of the batch is acknowledged by the broker (idempotent producer,
  acks=all), or, for the indexer, after the index has flushed. A crash anywhere before the commit
  redelivers the batch; version fencing and deterministic ids make the replay a no-op.
- the batch is processed before the next fetch, so in-flight work is bounded by `max_batch` records.
- a record that cannot be decoded, or that fails with a non-transient error, goes to the stage's
  dead-letter topic with the original bytes, headers and the reason; the partition keeps flowing.
- a transient failure that outlives its retries means a downstream is down: the batch is rewound
  (not committed) and the consumer sleeps with growing back-off, which stops fetching rather than
  buffering. After `max_redeliveries` such rounds the batch's records are tried one by one and the
  ones that still fail are dead-lettered, so one record that always times out cannot wedge a partition.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord  # type: ignore[import-untyped]
from aiokafka.errors import CommitFailedError, KafkaError  # type: ignore[import-untyped]
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from headwater.config import KafkaSettings
from headwater.observability import tracing
from headwater.observability.metrics import StageMeter, observe_consumer_lag
from headwater.runtime.batches import BatchOutcome, BatchRetryPolicy, Handler, run_batch
from headwater.runtime.distributed import codec
from schemas import DeadLetter
from schemas.topics import PIPELINE, STAGES, Topic, dead_letter_topic

logger = logging.getLogger(__name__)


def input_topic(stage: str) -> Topic:
    return PIPELINE[STAGES.index(stage)]


def output_topic(stage: str) -> Topic | None:
    position = STAGES.index(stage) + 1
    return PIPELINE[position] if position < len(PIPELINE) else None


@dataclass(frozen=True)
class StageIO:
    """Where a consumer reads, how it decodes a record, where results and dead letters go.

    Pipeline stages read their contract topic; a source connector's consumer (e.g. CDC) reads the
    connector's topics with its own decoder. `decode` raises `codec.PoisonMessage` for a record that
    can never be processed."""

    topics: tuple[str, ...]
    decode: Callable[[Any], Any]
    output: str | None
    dead_letters: str
    pattern: str | None = None  # instead of `topics`: every topic whose name matches (from its start)


def pipeline_io(stage: str, kafka: KafkaSettings) -> StageIO:
    model = input_topic(stage).model
    target = output_topic(stage)
    return StageIO(
        topics=(kafka.topic(input_topic(stage).name),),
        decode=lambda record: codec.decode(model, record.value),
        output=kafka.topic(target.name) if target is not None else None,
        dead_letters=kafka.topic(dead_letter_topic(stage).name),
    )


@dataclass
class _Decoded:
    record: ConsumerRecord[bytes, bytes]
    message: BaseModel


@dataclass
class StageConsumer:
    """One stage's consumer loop; `register` attaches it to a FastStream broker."""

    stage: str
    handler: Handler
    kafka: KafkaSettings
    policy: BatchRetryPolicy
    after_batch: Any = None  # callable(results) run after the commit; the index node uses it for freshness
    io: StageIO | None = None  # default: the stage's pipeline topics and contract
    group: str | None = None  # default: the stage's consumer group
    _rewinds: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _stopping: bool = False
    _meter: StageMeter = field(init=False, repr=False, compare=False)
    # The handler, counting the messages of its failed attempts (both set by `register`).
    _counted: Handler = field(init=False, repr=False, compare=False)

    def register(self, broker: KafkaBroker) -> Any:
        """Attach to `broker`; returns the subscriber (start it yourself if the broker already runs)."""
        self._broker = broker
        self._meter = StageMeter(self.stage)
        self._counted = self._meter.counting_failures(self.handler, self.policy.transient)
        if self.io is None:
            self.io = pipeline_io(self.stage, self.kafka)
        subscriber = broker.subscriber(
            *(() if self.io.pattern else self.io.topics),
            pattern=self.io.pattern,
            group_id=self.group or self.kafka.group(self.stage),
            batch=True,
            max_records=self.kafka.max_batch,
            batch_timeout_ms=self.kafka.batch_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            # A batch may take long (a cold model, a slow TEI): never let the group evict us for it.
            max_poll_interval_ms=int(max(300.0, self.kafka.graceful_timeout_s * 4) * 1000),
            parser=_tolerant_parser,
            decoder=_raw_records,
        )
        subscriber(self.on_batch)
        return subscriber

    def stop(self) -> None:
        self._stopping = True

    async def on_batch(self, records: Any, message: KafkaMessage) -> None:
        started = time.perf_counter()
        batch: list[ConsumerRecord[bytes, bytes]] = list(records)
        self._meter.received(len(batch))
        done = False
        spans = tracing.kafka_spans(self.stage, batch)  # a span per record, in the record's trace
        try:
            done = await self._handle(batch, message, spans)
        except Exception as exc:
            spans.failed_all(exc)
            # Never let an error escape to FastStream: with manual acks it would fetch on, and the next
            # commit would skip this batch. Rewind it and pause instead (e.g. the broker timed out a send).
            logger.exception("stage %s: batch failed outside the handler; rewinding", self.stage)
            self._meter.paused("error")
            await message.nack()
            self._meter.rewound(len(batch))
            await asyncio.sleep(self.kafka.pause_s)
        finally:
            spans.close()
            self._meter.idle()
            observe_consumer_lag(self.stage, getattr(message, "consumer", None), batch, committed=done)
        if done:
            self._meter.batch_done(time.perf_counter() - started)

    async def _handle(
        self, batch: list[ConsumerRecord[bytes, bytes]], message: KafkaMessage, spans: tracing.StageSpans
    ) -> bool:
        assert self.io is not None, "register() first"
        decoded: list[_Decoded] = []
        letters: list[DeadLetter] = []
        for record in batch:
            try:
                decoded.append(_Decoded(record, self.io.decode(record)))
            except codec.PoisonMessage as exc:
                letters.append(self._letter(record, exc, attempts=1))

        rewind_key = (batch[0].topic, batch[0].partition, batch[0].offset) if batch else None
        rounds = self._rewinds.get(rewind_key, 0) if rewind_key else 0
        outcome = await asyncio.to_thread(
            run_batch,
            [d.message for d in decoded],
            self._counted,
            policy=self.policy,
            isolate_transient=rounds + 1 >= self.kafka.max_redeliveries,
            stopping=lambda: self._stopping,
        )
        self._meter.retried(outcome.retries)
        if outcome.unavailable is not None:
            assert rewind_key is not None
            if len(self._rewinds) > 1024:  # keys of batches a rebalance took away; never complete here
                self._rewinds.clear()
            self._rewinds[rewind_key] = rounds + 1
            pause = min(self.kafka.pause_s * 2**rounds, 60.0)
            logger.warning(
                "stage %s: downstream unavailable (%s); batch left uncommitted, pausing %.1f s",
                self.stage,
                type(outcome.unavailable).__name__,
                pause,
            )
            self._meter.paused("downstream_unavailable")
            spans.failed_all(outcome.unavailable)
            await message.nack()  # rewinds every partition of the batch to its first record
            self._meter.rewound(len(batch))
            await asyncio.sleep(pause)
            return False
        if rewind_key:
            self._rewinds.pop(rewind_key, None)

        letters.extend(
            self._letter(decoded[i].record, error, attempts=self.policy.max_attempts)
            for i, error in sorted(outcome.failures.items())
        )
        await self._publish(decoded, outcome, letters, spans)
        try:
            await message.ack()
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions away: whoever owns them now redelivers this batch.
            logger.warning("stage %s: commit failed (%s); the batch will be redelivered", self.stage, exc)
            self._meter.rewound(len(batch))
            return False
        logger.debug(
            "stage %s committed %s",
            self.stage,
            ", ".join(f"{r.partition}:{r.offset}:{r.key!r}" for r in (d.record for d in decoded)),
        )
        self._meter.completed(len(outcome.results), dead_lettered=len(letters))
        if self.after_batch is not None:
            try:  # committed already: a failing observer must not rewind the batch
                self.after_batch([decoded[i].record for i in sorted(outcome.results)])
            except Exception:
                logger.exception("stage %s: after_batch failed", self.stage)
        return True

    async def _publish(
        self,
        decoded: Sequence[_Decoded],
        outcome: BatchOutcome,
        letters: list[DeadLetter],
        spans: tracing.StageSpans,
    ) -> None:
        """Send every output and dead letter, then wait for the broker to acknowledge them all."""
        assert self.io is not None
        pending: list[Any] = []
        events = 0
        if self.io.output is not None:
            for position in sorted(outcome.results):
                result = outcome.results[position]
                source = codec.header_dict(decoded[position].record.headers)
                headers = {h: source[h] for h in codec.PROPAGATED if h in source}
                # The outputs' parent is this record's span: the document's trace goes on, one hop on.
                headers |= spans.headers(tracing.record_key(decoded[position].record))
                # A handler may turn one record into several events (a CDC primary-key change: a delete
                # and an upsert); they are sent in order, so per-document order holds.
                for event in result if isinstance(result, list | tuple) else (result,):
                    key, value = codec.encode(event)
                    events += 1
                    pending.append(
                        await self._broker.publish(
                            value, self.io.output, key=key, headers=headers, no_confirm=True
                        )
                    )
        dlq = self.io.dead_letters
        for letter in letters:
            letter_key = letter.key.encode() if letter.key else None
            source_key = (letter.source_topic, letter.source_partition, letter.source_offset)
            spans.failed(source_key, letter.error_type)
            letter_headers = {codec.STAGE: self.stage, codec.ERROR_TYPE: letter.error_type}
            letter_headers |= spans.headers(source_key)  # a dead letter stays in its document's trace
            pending.append(
                await self._broker.publish(
                    letter.model_dump_json().encode(),
                    dlq,
                    key=letter_key,
                    headers=letter_headers,
                    no_confirm=True,
                )
            )
            logger.warning(
                "stage %s dead-lettered %s@%s:%s: %s",
                self.stage,
                letter.key,
                letter.source_partition,
                letter.source_offset,
                letter.error_type,
            )
        if pending:
            await asyncio.gather(*pending)
        self._meter.emitted(events)

    def _letter(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException, *, attempts: int
    ) -> DeadLetter:
        return DeadLetter(
            stage=self.stage,
            source_topic=record.topic,
            error_type=type(error).__name__,
            reason=str(error)[:2000] or type(error).__name__,
            attempts=attempts,
            key=record.key.decode("utf-8", errors="replace") if record.key is not None else None,
            payload_base64=base64.b64encode(record.value or b"").decode(),
            headers=codec.header_dict(record.headers),
            source_partition=record.partition,
            source_offset=record.offset,
        )


async def _tolerant_parser(records: Any, original: Any) -> Any:
    """FastStream's parser decodes header values as strict UTF-8; one bad header would make it raise
    before the handler runs, and the batch would be skipped. Replace undecodable values instead."""
    cleaned = []
    for record in records:
        try:
            for _, value in record.headers:
                (value or b"").decode()
            cleaned.append(record)
        except UnicodeDecodeError:
            fixed = tuple((k, (v or b"").decode(errors="replace").encode()) for k, v in record.headers)
            cleaned.append(_with_headers(record, fixed))
    return await original(tuple(cleaned))


def _with_headers(record: ConsumerRecord[bytes, bytes], headers: tuple[tuple[str, bytes], ...]) -> Any:
    from dataclasses import replace

    return replace(record, headers=headers)


async def _raw_records(message: Any, original: Any) -> Any:
    """Hand the handler the records themselves: it decodes them, so a bad one is a dead letter."""
    return message.raw_message
