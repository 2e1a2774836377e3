"""The ingest service's CDC consumer: Debezium topics in, document change events out.

A second consumer group (`<prefix>.cdc`) in the ingest process, on the same FastStream broker as the
redaction consumer. It reads the topics the table mappings name, turns each record into zero or more
`DocumentChanged` events (`services.ingest.cdc`) and publishes them to `headwater.documents.v1`, keyed by
document, where the ingest stage picks them up like any other change. A record that is not a change
event, or whose table is not mapped, goes to `headwater.dlq.cdc.v1` with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.config import KafkaSettings
from headwater.runtime.batches import BatchRetryPolicy
from headwater.runtime.distributed import codec
from headwater.runtime.distributed.consumer import StageConsumer, StageIO
from headwater.runtime.handlers import TRANSIENT
from schemas.topics import CDC_STAGE, DOCUMENTS, dead_letter_topic
from services.ingest.cdc import CdcIngest, CdcRecord, decode_record
from services.ingest.cdc.config import CdcSettings, load_mappings
from services.ingest.errors import CdcStateUnavailable, MalformedChangeEvent

if TYPE_CHECKING:
    from headwater.runtime.distributed.process import ServiceProcess


def decode(record: Any) -> CdcRecord:
    """A Kafka record of a Debezium topic; one that is not a change event is poison."""
    try:
        return decode_record(record.topic, record.key, record.value)
    except MalformedChangeEvent as exc:
        raise codec.PoisonMessage(str(exc)) from None


def cdc_io(ingest: CdcIngest, kafka: KafkaSettings) -> StageIO:
    return StageIO(
        topics=tuple(ingest.topics),
        pattern=ingest.mappings.topic_pattern(),
        decode=decode,
        output=kafka.topic(DOCUMENTS.name),
        dead_letters=kafka.topic(dead_letter_topic(CDC_STAGE).name),
    )


def attach_cdc_consumer(process: ServiceProcess, *, cdc: CdcSettings | None = None) -> StageConsumer | None:
    """Add the CDC consumer to an ingest process when `HEADWATER_CDC_MAPPINGS` names a mapping file."""
    from services.ingest.adapters.cdc_rows_postgres import PostgresRowTracker

    cdc = cdc or CdcSettings()
    if cdc.mappings is None:
        return None
    tracker = PostgresRowTracker(process.connect)
    tracker.ensure_schema()
    ingest = CdcIngest(mappings=load_mappings(cdc.mappings), tracker=tracker)
    consumer = StageConsumer(
        stage=CDC_STAGE,
        handler=ingest.handle,
        kafka=process.kafka,
        policy=BatchRetryPolicy(
            transient=(*TRANSIENT, CdcStateUnavailable), max_attempts=process.settings.max_attempts
        ),
        io=cdc_io(ingest, process.kafka),
    )
    consumer.register(process.broker)
    process.closers.append(consumer.stop)
    return consumer
