"""The embedded runtime: one process, every stage on its own thread, bounded queues between them, state
in (embedded) Postgres and an on-disk Qdrant-edge index. `bootstrap.build` makes its parts."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from headwater.observability.metrics import INTAKE, StageMeter
from headwater.observability.tracing import TracedChangeLog
from headwater.operations.compaction import graph_opener_for
from headwater.runtime import parts as build_parts
from headwater.runtime.compaction import compaction_job
from headwater.runtime.embedded.bootstrap import Components
from headwater.runtime.embedded.journal import Journal
from headwater.runtime.embedded.workers import Envelope, StageWorker, dead_letter_for
from headwater.runtime.handlers import TRANSIENT, StageHandlers
from headwater.runtime.migrations import CollectionModels, MigrationCoordinator
from schemas.topics import PIPELINE
from schemas.topics import STAGES as STAGE_NAMES
from services.chunker.handlers import ChunkStage
from services.embedder.handlers import EmbedStage
from services.embedder.pool import BackendPool
from services.graph_builder.handlers import EnrichStage
from services.indexer.handlers import IndexStage
from services.indexer.migration.store import MigrationStore
from services.ingest.handlers import RedactStage
from services.ingest.service import IntakeService
from services.query.service import QueryService

logger = logging.getLogger(__name__)


def stage_handlers(parts: Components, *, registry: MigrationStore) -> StageHandlers:
    """The five stage handlers over the runtime's parts."""
    return StageHandlers(
        redact=RedactStage(parts.redactor),
        # Chunk boundaries stay with the model they were tuned on, whatever model embeds the chunks.
        chunk=ChunkStage(parts.chunker, encode=(parts.boundary_encoder or parts.backend).embed),
        embed=EmbedStage(
            backend=parts.backend, cache=parts.cache, sparse=parts.sparse, settings=parts.embedder
        ),
        enrich=EnrichStage(parts.graph_store, parts.recognizer),
        index=IndexStage(
            index=parts.index,
            alias=parts.settings.collection_alias,
            metadata_indexes=parts.settings.metadata_indexes,
            registry=registry,
            default_model=(parts.backend.model_id, parts.backend.dimension),
            profile=parts.profile,
        ),
    )


class EmbeddedHeadwater:
    """Intake, the five processing stages and the query service in one process."""

    def __init__(self, parts: Components) -> None:
        self.parts = parts
        settings = parts.settings
        self.journal = Journal(parts.connect)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        # Remembers each change's intake trace, so the stages continue it (the journal keeps no trace).
        self._changes = TracedChangeLog(self.journal)
        self.intake = IntakeService(changes=self._changes, on_accepted=self._accepted)
        # Model migrations: the registry and state live in Postgres, this process carries them out.
        self.migrations = build_parts.migration_store(parts.connect)
        self.handlers = stage_handlers(parts, registry=self.migrations)
        indexing, embedding = self.handlers.index, self.handlers.embed
        assert indexing is not None  # stage_handlers builds every stage
        assert embedding is not None
        self.indexing: IndexStage = indexing
        self.embedding: EmbedStage = embedding
        self.collection = self.indexing.ensure_collection()
        pool = BackendPool(parts.embedder, parts.backend)
        self.coordinator = MigrationCoordinator(
            store=self.migrations,
            indexing=self.indexing,
            pool=pool,
            cache=parts.cache,
            embedder=parts.embedder,
            copy_backfill=True,
            embedding=self.embedding,
            page_size=parts.migration.page_size,
            pause_s=parts.migration.pause_s,
        )
        self.coordinator.step()  # a migration recorded before a restart is in force before any query
        self._migrator = threading.Thread(
            target=self.coordinator.run,
            args=(self._stop,),
            kwargs={"poll_s": parts.migration.poll_s},
            name="migrations",
            daemon=True,
        )
        self.query: QueryService = build_parts.query_service(
            parts.query,
            index=parts.index,
            alias=settings.collection_alias,
            backend=parts.backend,
            sparse=parts.sparse,
            graph_store=parts.graph_reader or parts.graph_store,
            models=CollectionModels(
                store=self.migrations, pool=pool, default=parts.backend, alias=settings.collection_alias
            ),
            recognizer=parts.recognizer,
        )
        self._queues: list[queue.Queue[Envelope]] = [
            queue.Queue(maxsize=settings.queue_size) for _ in range(5)
        ]
        self._sources = {stage: topic.name for stage, topic in zip(STAGE_NAMES, PIPELINE, strict=True)}
        self.workers = self._workers()
        self._feeder = threading.Thread(target=self._feed, name="journal-feeder", daemon=True)
        # This process owns the index directory, so it also compacts it (and the graph it writes).
        self.compaction = compaction_job(
            index=parts.index,
            collection=self.indexing.written_collections,
            graph=graph_opener_for(parts.graph_store, parts.connect),
        )
        self._lock = threading.Lock()
        self._outstanding: set[int] = set()
        self.completed = 0

    def _workers(self) -> list[StageWorker]:
        """One worker per stage, each forwarding into the next stage's queue (the last completes)."""
        settings = self.parts.settings
        workers = []
        for i, stage in enumerate(STAGE_NAMES):
            last = i + 1 == len(STAGE_NAMES)
            emit = self._complete if last else self._forward_to(self._queues[i + 1], stage)
            workers.append(
                StageWorker(
                    name=stage,
                    inbox=self._queues[i],
                    process=self.handlers.for_stage(stage),
                    emit=emit,
                    dead_letter=self._dead_letter,
                    batch_size=settings.batch_size,
                    transient=TRANSIENT,
                    max_attempts=settings.max_attempts,
                    stop=self._stop,
                )
            )
        return workers

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> EmbeddedHeadwater:
        for worker in self.workers:
            worker.start()
        self._feeder.start()
        self._migrator.start()
        if self.compaction is not None:
            self.compaction.start()
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop every thread and close the journal and the index; calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        for thread in [self._feeder, self._migrator, *self.workers]:
            if thread.is_alive():
                thread.join(timeout=timeout)
        if self.compaction is not None:
            self.compaction.stop(timeout=timeout)  # before the index closes under it
        self.journal.close()
        self.migrations.close()
        self.parts.index.close()

    def __enter__(self) -> EmbeddedHeadwater:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def feeder_alive(self) -> bool:
        return self._feeder.is_alive()

    def wait_idle(self, *, timeout: float = 600.0, poll: float = 0.05) -> bool:
        """Block until every accepted change is indexed or dead-lettered; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = bool(self._outstanding)
            if not busy and self.journal.backlog() == 0:
                return True
            time.sleep(poll)
        return False

    # -- stages -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters for operators: chunks made, PII redacted by type, dead letters, stage busy time."""
        return {
            "completed": self.completed,
            "chunks": self.handlers.chunk.chunks_created if self.handlers.chunk else 0,
            "pii": dict(self.handlers.redact.pii_counts) if self.handlers.redact else {},
            "dead_letters": sum(w.stats.dead_lettered for w in self.workers),
            "busy_seconds": {w.stage: round(w.stats.busy_seconds, 3) for w in self.workers},
        }

    # -- plumbing ---------------------------------------------------------------------------
    def _feed(self) -> None:
        """Move journal entries into the first stage, oldest first; a full queue blocks (backpressure)."""
        while not self._stop.is_set():
            try:
                fed = self._feed_once()
            except Exception:  # the database restarting must not kill the feeder: back off and retry
                logger.exception("journal feeder failed; retrying")
                self._stop.wait(timeout=1.0)
                continue
            if not fed:
                self._wake.wait(timeout=0.5)
                self._wake.clear()

    def _feed_once(self) -> int:
        with self._lock:
            in_flight = set(self._outstanding)
        entries = self.journal.pending(excluding=in_flight, limit=self.parts.settings.queue_size)
        for entry in entries:
            with self._lock:
                self._outstanding.add(entry.seq)
            trace = self._changes.context_of(entry.event.event_id)
            while not self._stop.is_set():
                try:
                    self._queues[0].put(Envelope(entry.seq, entry.event, trace), timeout=0.2)
                    break
                except queue.Full:
                    continue
        return len(entries)

    def _forward_to(self, target: queue.Queue[Envelope], stage: str) -> Callable[[list[Envelope]], None]:
        meter = StageMeter(stage)

        def forward(envelopes: list[Envelope]) -> None:
            paused = False
            for envelope in envelopes:
                while not self._stop.is_set():
                    try:
                        target.put(envelope, timeout=0.2)
                        break
                    except queue.Full:
                        if not paused:  # backpressure: the next stage is behind, this one waits
                            meter.paused("queue_full")
                            paused = True
            meter.emitted(len(envelopes))

        return forward

    def _accepted(self) -> None:
        INTAKE.labels("accepted").inc()
        self._wake.set()

    def _complete(self, envelopes: list[Envelope]) -> None:
        self._finish([e.seq for e in envelopes])

    def _finish(self, seqs: list[int]) -> None:
        self.journal.complete(seqs)
        with self._lock:
            self._outstanding.difference_update(seqs)
            self.completed += len(seqs)

    def _dead_letter(self, stage: str, envelope: Envelope, error: BaseException, attempts: int) -> None:
        message = envelope.message
        letter = dead_letter_for(
            stage=stage, source=self._sources[stage], message=message, error=error, attempts=attempts
        )
        # The reason names the error type and message; document text never goes to the log.
        logger.warning("stage %s dead-lettered %s: %s", stage, letter.key, letter.error_type)
        self.journal.dead_letter(
            letter, tenant=getattr(message, "tenant", None), document_id=getattr(message, "document_id", None)
        )
        self._finish([envelope.seq])
