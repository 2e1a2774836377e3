"""The stage consumer hands each record's trace on, on a real broker: an output's `traceparent` is the
consumer's span of the record it came from (same trace, one hop on), and so is a dead letter's."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from headwater.config import KafkaSettings
from headwater.observability import tracing
from headwater.runtime.distributed import codec
from headwater.runtime.distributed.consumer import StageConsumer
from headwater.stack.kafka import KafkaBroker
from schemas import DocumentChanged, DocumentRedacted
from schemas.topics import DOCUMENTS, DOCUMENTS_REDACTED, dead_letter_topic
from tests.integration.test_stage_consumer import StandInRedactor, _change, _with_stage
from tests.kafka_support import drain
from tests.tracing_support import hex_ids, recording
from tests.waiting import eventually

tracer = trace.get_tracer(__name__)


async def _send_traced(producer: AIOKafkaProducer, topic: str, event: DocumentChanged) -> tuple[str, str]:
    """Send `event` under a fresh trace; its (trace id, span id)."""
    with tracer.start_as_current_span(f"intake {event.document_id}") as span:
        headers: list[tuple[str, bytes]] = [(codec.ACCEPTED_AT, b"1700000000000")]
        tracing.inject_kafka(headers)
    key, value = codec.encode(event)
    await producer.send_and_wait(topic, value, key=key, headers=headers)
    trace_id, span_id, _ = hex_ids(span)  # type: ignore[arg-type]
    return trace_id, span_id


def _parent_of(record: Any) -> tuple[str, str]:
    """(trace id, parent span id) of a record's traceparent."""
    _, trace_id, span_id, _ = dict(record.headers)["traceparent"].decode().split("-")
    return trace_id, span_id


def test_outputs_and_dead_letters_continue_their_records_trace(kafka_broker: KafkaBroker) -> None:
    sent: dict[bytes, tuple[str, str]] = {}  # by record key: the producer's (trace id, span id)
    parents: dict[bytes, tuple[str, str]] = {}  # by record key: what the consumer's output carries
    with recording() as exporter:

        def process_spans() -> dict[bytes, Any]:
            return {
                str(dict(s.attributes or {})["messaging.kafka.message.key"]).encode(): s
                for s in exporter.get_finished_spans()
                if s.name == "ingest process"
            }

        async def body(kafka: KafkaSettings, producer: AIOKafkaProducer, consumer: StageConsumer) -> None:
            source = kafka.topic(DOCUMENTS.name)
            sent[b"acme/good"] = await _send_traced(producer, source, _change("good"))
            sent[b"acme/bad"] = await _send_traced(producer, source, _change("bad", title="poison"))
            (output,) = await drain(kafka.bootstrap_servers, kafka.topic(DOCUMENTS_REDACTED.name), 1)
            (letter,) = await drain(kafka.bootstrap_servers, kafka.topic(dead_letter_topic("ingest").name), 1)
            assert DocumentRedacted.model_validate_json(output.value).document_id == "good"
            assert dict(output.headers)[codec.ACCEPTED_AT] == b"1700000000000"  # still handed on beside it
            parents[output.key] = _parent_of(output)
            parents[letter.key] = _parent_of(letter)
            # The spans end once the batch is committed.
            await eventually(lambda: len(process_spans()) >= 2, timeout_s=5)

        asyncio.run(_with_stage(kafka_broker, StandInRedactor(), body))
        spans = process_spans()

    for key in (b"acme/good", b"acme/bad"):
        span_trace, span_id, span_parent = hex_ids(spans[key])
        assert (span_trace, span_parent) == sent[key]  # the consumer's span: a child of the record's
        assert parents[key] == (span_trace, span_id)  # what it published: a child of the consumer's
    assert spans[b"acme/bad"].status.status_code is StatusCode.ERROR
    assert spans[b"acme/good"].status.status_code is StatusCode.UNSET
