"""Composition root of the embedded runtime: one process, every stage on its own thread, bounded
queues between them, state in (embedded) Postgres and an on-disk Qdrant-edge index."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from headwater.config import HeadwaterSettings, MigrationSettings
from headwater.observability.metrics import INTAKE, StageMeter
from headwater.observability.tracing import TracedChangeLog
from headwater.postgres import state_connector
from headwater.runtime.compaction import compaction_job, graph_opener_for
from headwater.runtime.handlers import TRANSIENT, StageHandlers
from headwater.runtime.journal import Journal
from headwater.runtime.migrations import CollectionModels, MigrationCoordinator
from headwater.runtime.stages import Envelope, StageWorker, dead_letter_for
from schemas.topics import PIPELINE
from schemas.topics import STAGES as STAGE_NAMES
from services.chunker.config import ChunkerSettings
from services.embedder.config import EmbedderSettings
from services.embedder.factory import build_backend, build_sparse_encoder
from services.embedder.pool import BackendPool
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.profiles import current_profile, load_profiles
from services.embedder.sparse import SparseEncoder
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.indexer.migration.store import MigrationStore
from services.indexer.ports import VectorIndex
from services.ingest.redaction import Redactor
from services.ingest.service import IntakeService
from services.query.config import QuerySettings
from services.query.service import build_query_service

logger = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything the runtime needs; tests pass fakes or real adapters, `build` fills the rest."""

    settings: HeadwaterSettings
    index: VectorIndex
    backend: EmbeddingBackend
    cache: EmbeddingCache
    sparse: SparseEncoder
    redactor: Redactor
    graph_store: GraphStore
    recognizer: EntityRecognizer | None
    connect: Callable[[], psycopg.Connection[Any]]
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    boundary_encoder: EmbeddingBackend | None = None  # scores chunk cut points; None: the backend
    query: QuerySettings = field(default_factory=QuerySettings)
    graph_reader: GraphStore | None = None  # the query side's own connection; None: `graph_store`
    profile: dict[str, Any] | None = None  # the model profile `backend` was built from; None: given
    migration: MigrationSettings = field(default_factory=MigrationSettings)


def build(
    settings: HeadwaterSettings,
    *,
    index: VectorIndex | None = None,
    backend: EmbeddingBackend | None = None,
    cache: EmbeddingCache | None = None,
    redactor: Redactor | None = None,
    graph_store: GraphStore | None = None,
    recognizer: EntityRecognizer | None = None,
    embedder: EmbedderSettings | None = None,
    chunker: ChunkerSettings | None = None,
    query: QuerySettings | None = None,
    migration: MigrationSettings | None = None,
) -> Components:
    """Production defaults for every part not given."""
    from services.embedder.adapters.cache import PostgresEmbeddingCache
    from services.graph_builder.adapters.postgres import PostgresGraphStore
    from services.indexer.adapters.edge import EdgeIndex

    connect_db = state_connector(settings)

    embedder = embedder or EmbedderSettings()
    if cache is None:
        pg_cache = PostgresEmbeddingCache(connection=connect_db())
        pg_cache.ensure_schema()
        cache = pg_cache
    graph_reader: GraphStore | None = None
    if graph_store is None:
        pg_graph = PostgresGraphStore(connect_db())
        pg_graph.ensure_schema()
        graph_store = pg_graph
        # Queries read on their own connection, never inside the graph stage's write transactions.
        graph_reader = PostgresGraphStore(connect_db())
    profile = None
    if backend is None:
        backend = build_backend(embedder)
        profile = current_profile(embedder, load_profiles(embedder.profiles_file)).model_dump()
    chunker = chunker or ChunkerSettings()
    return Components(
        settings=settings,
        index=index or EdgeIndex(settings.index_dir),
        backend=backend,
        cache=cache,
        sparse=build_sparse_encoder(embedder),
        redactor=redactor or Redactor(secret=settings.pii_secret.get_secret_value().encode()),
        graph_store=graph_store,
        recognizer=recognizer,
        connect=connect_db,
        chunker=chunker,
        embedder=embedder,
        boundary_encoder=boundary_encoder_for(chunker, embedder, backend),
        query=query or QuerySettings(),
        graph_reader=graph_reader,
        profile=profile,
        migration=migration or MigrationSettings(),
    )


def boundary_encoder_for(
    chunker: ChunkerSettings, embedder: EmbedderSettings, backend: EmbeddingBackend
) -> EmbeddingBackend:
    """The int8 export of the local model scores cut points at about twice the speed of fp32."""
    if chunker.boundary_model == "onnx-int8" and embedder.backend == "local":
        from services.embedder.adapters.onnx import OnnxBackend

        return OnnxBackend(cache_dir=embedder.onnx_cache_dir)
    return backend


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
        self.handlers = StageHandlers(
            settings=settings,
            redactor=parts.redactor,
            backend=parts.backend,
            boundary_encoder=parts.boundary_encoder,
            cache=parts.cache,
            sparse=parts.sparse,
            graph_store=parts.graph_store,
            recognizer=parts.recognizer,
            index=parts.index,
            chunker=parts.chunker,
            embedder=parts.embedder,
        )
        # Model migrations: the registry and state live in Postgres, this process carries them out.
        self.migrations = MigrationStore(parts.connect)
        self.migrations.ensure_schema()
        self.handlers.registry = self.migrations
        self.handlers.profile = parts.profile
        # Chunk boundaries stay with the model they were tuned on, whatever model embeds the chunks.
        self.handlers.boundary_encoder = parts.boundary_encoder or parts.backend
        self.collection = self.handlers.ensure_collection()
        pool = BackendPool(parts.embedder, parts.backend)
        self.coordinator = MigrationCoordinator(
            store=self.migrations,
            handlers=self.handlers,
            pool=pool,
            cache=parts.cache,
            copy_backfill=True,
            follow_read_model=True,
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
        models = CollectionModels(
            store=self.migrations, pool=pool, default=parts.backend, alias=settings.collection_alias
        )
        self.query = build_query_service(
            parts.query,
            index=parts.index,
            alias=settings.collection_alias,
            embed_query=lambda text: [float(x) for x in parts.backend.embed([text])[0]],
            encode_sparse_query=parts.sparse.encode_query,
            graph_store=parts.graph_reader or parts.graph_store,
            recognizer=parts.recognizer,
        )
        self.query.embed_for = models.embed_for
        self.query.index_allowed = models.index_allowed
        size = settings.queue_size
        self._queues: list[queue.Queue[Envelope]] = [queue.Queue(maxsize=size) for _ in range(5)]
        steps: list[tuple[str, str, Callable[[list[Any]], Sequence[Any]], int]] = [
            (stage, topic.name, self.handlers.for_stage(stage), settings.batch_size)
            for stage, topic in zip(STAGE_NAMES, PIPELINE, strict=True)
        ]
        self._sources = {stage: topic for stage, topic, _, _ in steps}
        self.workers: list[StageWorker] = []
        for i, (stage, _, process, batch) in enumerate(steps):
            emit = self._forward_to(self._queues[i + 1], stage) if i + 1 < len(steps) else self._complete
            self.workers.append(
                StageWorker(
                    name=stage,
                    inbox=self._queues[i],
                    process=process,
                    emit=emit,
                    dead_letter=self._dead_letter,
                    batch_size=batch,
                    transient=TRANSIENT,
                    max_attempts=settings.max_attempts,
                    stop=self._stop,
                )
            )
        self._feeder = threading.Thread(target=self._feed, name="journal-feeder", daemon=True)
        # This process owns the index directory, so it also compacts it (and the graph it writes).
        self.compaction = compaction_job(
            index=parts.index,
            collection=self.handlers.written_collections,
            graph=graph_opener_for(parts.graph_store, parts.connect),
        )
        self._lock = threading.Lock()
        self._outstanding: set[int] = set()
        self.completed = 0

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
            "chunks": self.handlers.chunks_created,
            "pii": dict(self.handlers.pii_counts),
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
