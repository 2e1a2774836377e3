"""Composition root of the embedded runtime: one process, every stage on its own thread, bounded
queues between them, state in (embedded) Postgres and an on-disk Qdrant-edge index."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from headwater.config import HeadwaterSettings
from headwater.models import count_tokens
from headwater.postgres import connect, embedded_postgres_url
from headwater.runtime.journal import Journal
from headwater.runtime.stages import Envelope, StageWorker, dead_letter_for
from schemas import ChunksCreated, ChunksEmbedded, ChunksEnriched, DocumentChanged, DocumentRedacted
from schemas.topics import CHUNKS, CHUNKS_EMBEDDED, CHUNKS_ENRICHED, DOCUMENTS, DOCUMENTS_REDACTED
from services.chunker.config import ChunkerSettings
from services.chunker.logic import chunk_documents
from services.embedder.config import EmbedderSettings
from services.embedder.errors import TransientEmbeddingError
from services.embedder.factory import build_backend, build_sparse_encoder
from services.embedder.logic import embed_chunk_sets
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.sparse import SparseEncoder
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.graph_builder.service import build_graph_for
from services.indexer.ports import CollectionSpec, VectorIndex
from services.indexer.service import index_event
from services.ingest.redaction import Redactor
from services.ingest.redaction.documents import redact_documents
from services.ingest.service import IntakeService
from services.query.service import QueryService

logger = logging.getLogger(__name__)

TRANSIENT: tuple[type[BaseException], ...] = (TransientEmbeddingError, psycopg.OperationalError, TimeoutError)


def collection_name(alias: str, model_id: str, dimension: int, generation: int = 1) -> str:
    """Versioned physical collection for a model; the alias in front of it is what readers use."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")
    return f"{alias}__{slug}__d{dimension}__v{generation}"


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
) -> Components:
    """Production defaults for every part not given."""
    from services.embedder.adapters.cache import PostgresEmbeddingCache
    from services.graph_builder.adapters.postgres import PostgresGraphStore
    from services.indexer.adapters.edge import EdgeIndex

    url = settings.database_url or embedded_postgres_url(settings.postgres_dir)

    def connect_db() -> psycopg.Connection[Any]:
        return connect(url, schema=settings.database_schema)

    embedder = embedder or EmbedderSettings()
    if cache is None:
        pg_cache = PostgresEmbeddingCache(connection=connect_db())
        pg_cache.ensure_schema()
        cache = pg_cache
    if graph_store is None:
        pg_graph = PostgresGraphStore(connect_db())
        pg_graph.ensure_schema()
        graph_store = pg_graph
    backend = backend or build_backend(embedder)
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
        boundary_encoder=_boundary_encoder(chunker, embedder, backend),
    )


def _boundary_encoder(
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
        self.intake = IntakeService(changes=self.journal, on_accepted=self._wake.set)
        self.collection = self._ensure_collection()
        self.query = QueryService(
            index=parts.index,
            alias=settings.collection_alias,
            embed_query=lambda text: [float(x) for x in parts.backend.embed([text])[0]],
            encode_sparse_query=parts.sparse.encode_query,
        )
        size = settings.queue_size
        self._queues: list[queue.Queue[Envelope]] = [queue.Queue(maxsize=size) for _ in range(5)]
        steps: list[tuple[str, str, Callable[[list[Any]], Sequence[Any]], int]] = [
            ("ingest", DOCUMENTS.name, self._redact, settings.batch_size),
            ("chunker", DOCUMENTS_REDACTED.name, self._chunk, settings.batch_size),
            ("embedder", CHUNKS.name, self._embed, settings.batch_size),
            ("graph_builder", CHUNKS_EMBEDDED.name, self._enrich, settings.batch_size),
            ("indexer", CHUNKS_ENRICHED.name, self._index, settings.batch_size),
        ]
        self._sources = {stage: topic for stage, topic, _, _ in steps}
        self.workers: list[StageWorker] = []
        for i, (stage, _, process, batch) in enumerate(steps):
            emit = self._forward_to(self._queues[i + 1]) if i + 1 < len(steps) else self._complete
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
        self._lock = threading.Lock()
        self._outstanding: set[int] = set()
        self.completed = 0
        self.chunks_created = 0
        self.pii_counts: Counter[str] = Counter()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> EmbeddedHeadwater:
        for worker in self.workers:
            worker.start()
        self._feeder.start()
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop every thread and close the journal and the index; calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        for thread in [self._feeder, *self.workers]:
            if thread.is_alive():
                thread.join(timeout=timeout)
        self.journal.close()
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
            "chunks": self.chunks_created,
            "pii": dict(self.pii_counts),
            "dead_letters": sum(w.stats.dead_lettered for w in self.workers),
            "busy_seconds": {w.stage: round(w.stats.busy_seconds, 3) for w in self.workers},
        }

    def _redact(self, events: list[DocumentChanged]) -> list[DocumentRedacted]:
        redacted = redact_documents(events, redactor=self.parts.redactor)
        for doc in redacted:
            self.pii_counts.update(doc.pii_counts)
        return redacted

    def _chunk(self, docs: list[DocumentRedacted]) -> list[ChunksCreated]:
        encoder = self.parts.boundary_encoder or self.parts.backend
        sets = chunk_documents(
            docs,
            settings=self.parts.chunker,
            count_tokens=count_tokens,
            encode=lambda texts: encoder.embed(texts),
        )
        self.chunks_created += sum(len(s.chunks) for s in sets)
        return sets

    def _embed(self, sets: list[ChunksCreated]) -> list[ChunksEmbedded]:
        return embed_chunk_sets(
            sets,
            backend=self.parts.backend,
            cache=self.parts.cache,
            sparse=self.parts.sparse,
            max_batch_tokens=self.parts.embedder.max_batch_tokens,
            max_batch_size=self.parts.embedder.max_batch_size,
        )

    def _enrich(self, sets: list[ChunksEmbedded]) -> list[ChunksEnriched]:
        return [
            build_graph_for(s, recognizer=self.parts.recognizer, store=self.parts.graph_store) for s in sets
        ]

    def _index(self, sets: list[ChunksEnriched]) -> list[Any]:
        outcomes = [index_event(s, index=self.parts.index, collection=self.collection) for s in sets]
        # One fsync per batch, before the journal forgets these changes (10-350 ms per flush here).
        self.parts.index.flush()
        return outcomes

    # -- plumbing ---------------------------------------------------------------------------
    def _ensure_collection(self) -> str:
        index, alias = self.parts.index, self.parts.settings.collection_alias
        current = index.resolve_alias(alias)
        if current is not None:
            return current
        name = collection_name(alias, self.parts.backend.model_id, self.parts.backend.dimension)
        index.ensure_collection(CollectionSpec(name=name, dense_dim=self.parts.backend.dimension))
        index.switch_alias(alias, name)
        return name

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
            while not self._stop.is_set():
                try:
                    self._queues[0].put(Envelope(entry.seq, entry.event), timeout=0.2)
                    break
                except queue.Full:
                    continue
        return len(entries)

    def _forward_to(self, target: queue.Queue[Envelope]) -> Callable[[list[Envelope]], None]:
        def forward(envelopes: list[Envelope]) -> None:
            for envelope in envelopes:
                while not self._stop.is_set():
                    try:
                        target.put(envelope, timeout=0.2)
                        break
                    except queue.Full:
                        continue

        return forward

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
