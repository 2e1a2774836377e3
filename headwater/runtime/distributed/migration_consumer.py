"""A model migration's consumer in the process that writes the index (index node or indexer).

It re-reads the enriched-chunk topic from its start in its own consumer group
(`<prefix>.migrate.<id>`): the compacted topic holds the latest version of every document, so reading
it through is the backfill, and staying subscribed keeps the new collection in step with live changes.
Each change is re-embedded for the collections whose model did not embed it (the target before
cutover; the source, kept for rollback, once the embedders follow the target's model) and indexed with
the same version fencing as the indexer. A change the collection already holds is skipped before any
embedding, so a consumer restarted mid-backfill does not re-embed finished chunks.

The subscriber is added to the running FastStream broker when the coordinator sees the migration, and
stopped when it is finished or aborted. Records it cannot process go to the indexer's dead-letter topic
(they come from the indexer's input; a redrive there reaches both consumers).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.operations.names import migration_group
from headwater.runtime.batches import BatchRetryPolicy
from headwater.runtime.distributed import codec
from headwater.runtime.distributed.consumer import StageConsumer, StageIO
from headwater.runtime.handlers import TRANSIENT
from schemas import ChunksEnriched
from schemas.topics import CHUNKS_ENRICHED, dead_letter_topic
from services.embedder.reembed import Reembedder
from services.indexer.migration.plan import IndexCollection, Migration
from services.indexer.migration.writer import write_everywhere
from services.indexer.service import IndexOutcome

if TYPE_CHECKING:
    from headwater.runtime.distributed.process import ServiceProcess
    from headwater.runtime.migrations import MigrationCoordinator

logger = logging.getLogger(__name__)
MIGRATE_STAGE = "migrate"


@dataclass
class MigrationHandler:
    """Batch in, one outcome per change out; writes only the collections of another model."""

    coordinator: MigrationCoordinator
    migration_id: int

    def __call__(self, events: list[ChunksEnriched]) -> list[IndexOutcome]:
        migration = self.coordinator.store.get(self.migration_id)
        if migration is None or not migration.state.active:
            return [_skipped(e, "the migration is over") for e in events]
        used: dict[str, tuple[Reembedder, int]] = {}  # texts each backend had embedded before this batch

        def reembedder_for(collection: IndexCollection) -> Reembedder:
            reembed = self.coordinator.reembedder(collection)
            used.setdefault(collection.name, (reembed, reembed.backend.texts))
            return reembed

        with self.coordinator.indexing.write_lock:
            report = write_everywhere(
                events,
                index=self.coordinator.index,
                collections=migration.write_collections,
                reembedder_for=reembedder_for,
                as_is=False,
            )
            self.coordinator.index.flush()  # durable before the offsets are committed
        texts = sum(reembed.backend.texts - before for reembed, before in used.values())
        self.coordinator.store.add_progress(self.migration_id, points=report.reembedded_points, texts=texts)
        return [
            o or _skipped(events[i], "its model's collection is written by the indexer")
            for i, o in enumerate(report.outcomes)
        ]


def _skipped(event: ChunksEnriched, reason: str) -> IndexOutcome:
    return IndexOutcome(
        tenant=event.tenant,
        document_id=event.document_id,
        version=event.version,
        status="noop",
        reason=reason,
        upserted=0,
        soft_deleted=0,
    )


@dataclass
class MigrationConsumers:
    """Starts and stops the migration consumer on the process's event loop, from the coordinator thread."""

    process: ServiceProcess
    coordinator: MigrationCoordinator | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _wanted: Migration | None = None
    _running: dict[int, tuple[StageConsumer, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _task: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the event loop once the broker runs; starts what the coordinator already asked for."""
        with self._lock:
            self._loop = loop
            wanted = self._wanted
        self._task = loop.create_task(self._reconcile(wanted))

    def switch(self, migration: Migration | None) -> None:
        """Called from the coordinator's thread: start or stop consumers and wait until done."""
        with self._lock:
            self._wanted = migration
            loop = self._loop
        if loop is None:
            return  # not running yet: `bind` starts it
        future = asyncio.run_coroutine_threadsafe(self._reconcile(migration), loop)
        future.result(timeout=120)

    async def _reconcile(self, migration: Migration | None) -> None:
        wanted = migration.id if migration is not None else None
        for mid in [m for m in self._running if m != wanted]:
            consumer, subscriber = self._running.pop(mid)
            consumer.stop()
            await subscriber.stop()
            logger.info("migration %s: consumer stopped", mid)
        if migration is not None and wanted not in self._running:
            assert self.coordinator is not None
            kafka = self.process.kafka
            consumer = StageConsumer(
                stage=MIGRATE_STAGE,
                handler=MigrationHandler(self.coordinator, migration.id),
                kafka=kafka,
                policy=BatchRetryPolicy(transient=TRANSIENT, max_attempts=self.process.settings.max_attempts),
                io=StageIO(
                    topics=(kafka.topic(CHUNKS_ENRICHED.name),),
                    decode=lambda record: codec.decode(ChunksEnriched, record.value),
                    output=None,
                    dead_letters=kafka.topic(dead_letter_topic("indexer").name),
                ),
                group=migration_group(kafka, migration.id),
            )
            subscriber = consumer.register(self.process.broker)
            await subscriber.start()
            self._running[migration.id] = (consumer, subscriber)
            logger.info("migration %s: consumer started (group %s)", migration.id, consumer.group)

    def stop(self) -> None:
        for consumer, _ in self._running.values():
            consumer.stop()
