"""Composition root of the distributed runtime: `headwater run <service>` builds one process.

Each consumer service is one stage's handler (the same `StageHandlers` the embedded runtime runs)
behind a `StageConsumer`. `ingest` adds the HTTP intake, `query` is the gateway over a Qdrant server,
and `index-node` runs indexer and gateway in one process over the embedded engine, which only one
process may open (the local stack, and small deployments).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from headwater import __version__
from headwater.config import HeadwaterSettings, KafkaSettings
from headwater.http import BodySizeLimit, install_problem_handlers
from headwater.observability import metrics, tracing
from headwater.postgres import state_connector
from headwater.runtime.batches import RetryPolicy
from headwater.runtime.distributed import HTTP_SERVICES, SERVICES, codec
from headwater.runtime.distributed.consumer import StageConsumer
from headwater.runtime.handlers import TRANSIENT, StageHandlers
from schemas import DocumentChanged
from schemas.documents import MAX_DOCUMENT_BYTES
from schemas.topics import DOCUMENTS
from services.chunker.config import ChunkerSettings
from services.embedder.config import EmbedderSettings
from services.indexer.ports import VectorIndex

if TYPE_CHECKING:
    from services.embedder.pool import BackendPool
    from services.indexer.migration.store import MigrationStore
from services.ingest.errors import IngestError, IntakeUnavailable
from services.ingest.service import IntakeService
from services.query.errors import QueryError
from services.query.service import QueryService

logger = logging.getLogger(__name__)


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


@dataclass
class ServiceProcess:
    """What one `headwater run` process holds; `serve` runs it until SIGTERM/SIGINT."""

    name: str
    settings: HeadwaterSettings
    kafka: KafkaSettings
    handlers: StageHandlers
    broker: KafkaBroker
    consumer: StageConsumer | None = None
    query: QueryService | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    starters: list[Callable[[asyncio.AbstractEventLoop], None]] = field(default_factory=list)  # broker up
    halts: list[Callable[[], None]] = field(default_factory=list)  # background work, before the broker stops
    app: FastAPI | None = None

    async def serve(self, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        import uvicorn

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.broker.start()
        for start in self.starters:
            start(loop)
        server: Any = None
        server_task: asyncio.Task[None] | None = None
        if self.name in HTTP_SERVICES:
            self.app = self._http_app(loop)
            # log_config=None: uvicorn's lines go through the process's handlers (JSON, with trace ids).
            config = uvicorn.Config(
                self.app, host=host, port=port, log_level="warning", lifespan="off", log_config=None
            )
            server = uvicorn.Server(config)
            server.install_signal_handlers = lambda: None  # ours stop the consumer first
            server_task = asyncio.create_task(server.serve())
        logger.info("service %s running", self.name)
        await stop.wait()
        logger.info("service %s stopping", self.name)
        if server is not None and server_task is not None:
            server.should_exit = True  # stop taking requests before the producer goes away
            await server_task
        if self.consumer is not None:
            self.consumer.stop()
        for halt in self.halts:  # off the loop: a background thread may be waiting on it
            await asyncio.to_thread(halt)
        await self.broker.stop()  # waits up to graceful_timeout for the batch in hand
        for close in self.closers:
            close()

    def _http_app(self, loop: asyncio.AbstractEventLoop) -> FastAPI:
        from services.ingest.routes import router as intake_router
        from services.ingest.webhook_routes import install_webhooks
        from services.query.routes import router as query_router

        app = FastAPI(
            title=f"Headwater {self.name}", version=__version__, telemetry=tracing.FASTAPI_TELEMETRY
        )
        install_problem_handlers(app, domain_errors=(IngestError, QueryError))
        if self.name == "ingest":
            app.state.intake = IntakeService(changes=KafkaChangeLog(self.broker, loop, self.kafka))
            app.include_router(intake_router)
            install_webhooks(app, intake=app.state.intake, connect=_connect_db(self.settings))
        if self.query is not None:
            from services.query.config import AccessSettings
            from services.query.routes import install_access

            app.state.query_service = self.query
            app.include_router(query_router)
            install_access(
                app,
                settings=AccessSettings(),
                environment=self.settings.environment,
                connect=_connect_db(self.settings),
            )

        @app.get("/healthz", tags=["ops"])
        def healthz() -> dict[str, str]:
            """The process is up."""
            return {"status": "ok", "service": self.name}

        metrics.install_metrics_route(app)  # the same registry as the metrics port

        app.add_middleware(BodySizeLimit, max_bytes=MAX_DOCUMENT_BYTES * 2)
        app.add_middleware(tracing.TracingMiddleware)
        return app


def build_service(
    name: str,
    *,
    settings: HeadwaterSettings | None = None,
    kafka: KafkaSettings | None = None,
    embedder: EmbedderSettings | None = None,
    chunker: ChunkerSettings | None = None,
) -> ServiceProcess:
    """Only the parts the service's stage needs are built (the chunker never loads spaCy, etc.)."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    settings = settings or HeadwaterSettings()
    kafka = kafka or KafkaSettings()
    embedder = embedder or EmbedderSettings()
    chunker = chunker or ChunkerSettings()
    stage = SERVICES[name]
    handlers = StageHandlers(settings=settings, chunker=chunker, embedder=embedder)
    process = ServiceProcess(
        name=name,
        settings=settings,
        kafka=kafka,
        handlers=handlers,
        broker=KafkaBroker(
            kafka.bootstrap_servers,
            client_id=f"headwater-{name}",
            enable_idempotence=True,  # acks=all; a retried send is never written twice
            allow_auto_create_topics=False,  # topics are provisioned as code (compaction, partitions)
            graceful_timeout=kafka.graceful_timeout_s,
            logger=logging.getLogger("faststream"),
        ),
    )
    _build_parts(process, stage, embedder=embedder, chunker=chunker)
    if stage in ("indexer", "graph_builder"):
        from headwater.runtime.compaction import compaction_job, postgres_graph

        # The index writer compacts its index (the edge engine opens in one process only), the graph
        # writer its graph; HEADWATER_INDEXER_COMPACT_INTERVAL_S=0 turns both off.
        job = compaction_job(
            index=handlers.index if stage == "indexer" else None,
            collection=handlers.written_collections,
            graph=postgres_graph(_connect_db(settings)) if stage == "graph_builder" else None,
        )
        if job is not None:
            job.start()
            process.closers.insert(0, job.stop)  # stopped before the index closes
    if stage is not None:
        after = _freshness_observer if stage == "indexer" else None
        process.consumer = StageConsumer(
            stage=stage,
            handler=handlers.for_stage(stage),
            kafka=kafka,
            policy=RetryPolicy(transient=TRANSIENT, max_attempts=settings.max_attempts),
            after_batch=after,
        )
        process.consumer.register(process.broker)
    if stage == "ingest":
        from headwater.runtime.distributed.cdc import attach_cdc_consumer

        attach_cdc_consumer(process)  # only with HEADWATER_CDC_MAPPINGS
        from headwater.observability.replication import start_slot_monitor

        if (monitor := start_slot_monitor()) is not None:  # only with HEADWATER_CDC_SOURCE_URL
            process.closers.append(monitor.stop)
    return process


def _build_parts(
    process: ServiceProcess, stage: str | None, *, embedder: EmbedderSettings, chunker: ChunkerSettings
) -> None:
    from services.embedder.factory import build_backend, build_sparse_encoder
    from services.embedder.pool import BackendPool

    handlers, settings = process.handlers, process.settings
    pool = BackendPool(embedder)  # every model this process embeds with, built once
    if stage == "ingest":
        from services.ingest.redaction import Redactor

        handlers.redactor = Redactor(secret=settings.pii_secret.get_secret_value().encode())
    elif stage == "chunker":
        from headwater.runtime.embedded import boundary_encoder_for

        handlers.backend = build_backend(embedder)
        handlers.boundary_encoder = boundary_encoder_for(chunker, embedder, handlers.backend)
    elif stage == "embedder":
        from services.embedder.adapters.cache import PostgresEmbeddingCache

        handlers.backend = pool.add(build_backend(embedder))
        handlers.sparse = build_sparse_encoder(embedder)
        cache = PostgresEmbeddingCache(connection=_connect_db(settings)())
        cache.ensure_schema()
        handlers.cache = cache
        _follow_readers_model(process, pool)
    elif stage == "graph_builder":
        from services.graph_builder.adapters.postgres import PostgresGraphStore

        store = PostgresGraphStore(_connect_db(settings)())
        store.ensure_schema()
        handlers.graph_store = store
    if stage == "indexer" or process.name == "query":
        handlers.index = _open_index(settings, read_only=process.name == "query")
        process.closers.append(handlers.index.close)
    if stage == "indexer":
        _coordinate_migrations(process, pool)
    if process.name in ("query", "index-node"):
        from headwater.runtime.migrations import CollectionModels
        from services.graph_builder.adapters.postgres import PostgresGraphStore
        from services.indexer.migration.store import MigrationStore
        from services.query.config import QuerySettings
        from services.query.service import build_query_service

        backend = pool.add(build_backend(embedder))
        sparse = build_sparse_encoder(embedder)
        graph_reader = PostgresGraphStore(_connect_db(settings)())  # the graph stage writes it
        graph_reader.ensure_schema()
        assert handlers.index is not None
        process.query = build_query_service(
            QuerySettings(),
            index=handlers.index,
            alias=settings.collection_alias,
            embed_query=lambda text: [float(x) for x in backend.embed([text])[0]],
            encode_sparse_query=sparse.encode_query,
            graph_store=graph_reader,
        )
        # A query is embedded with the model of the collection it reads (both sides of a migration).
        registry = MigrationStore(_connect_db(settings))
        registry.ensure_schema()
        process.closers.append(registry.close)
        models = CollectionModels(store=registry, pool=pool, default=backend, alias=settings.collection_alias)
        process.query.embed_for = models.embed_for
        process.query.index_allowed = models.index_allowed


def _migration_store(process: ServiceProcess) -> MigrationStore:
    from services.indexer.migration.store import MigrationStore

    store = MigrationStore(_connect_db(process.settings))
    store.ensure_schema()
    process.closers.append(store.close)
    return store


def _coordinate_migrations(process: ServiceProcess, pool: BackendPool) -> None:
    """The index writer carries out model migrations: alias moves, both collections written, and the
    migration consumer that backfills and re-embeds (see `distributed/migration.py`)."""
    from headwater.config import MigrationSettings
    from headwater.runtime.distributed.migration import MigrationConsumers
    from headwater.runtime.migrations import MigrationCoordinator
    from services.embedder.adapters.cache import PostgresEmbeddingCache

    store = _migration_store(process)
    process.handlers.registry = store
    cache = PostgresEmbeddingCache(connection=_connect_db(process.settings)())
    cache.ensure_schema()
    consumers = MigrationConsumers(process)
    coordinator = MigrationCoordinator(
        store=store,
        handlers=process.handlers,
        pool=pool,
        cache=cache,
        copy_backfill=False,
        follow_read_model=False,
        on_migration=consumers.switch,
    )
    consumers.coordinator = coordinator
    coordinator.step()  # the recorded state is in force before the first batch
    _in_background(process, "migrations", coordinator.run, MigrationSettings().poll_s, first=consumers.bind)
    process.halts.append(consumers.stop)


def _follow_readers_model(process: ServiceProcess, pool: BackendPool) -> None:
    """The embedding stage embeds with the model the readers' collection holds, so after a cutover new
    changes go into the target as they are (see `headwater.runtime.migrations`)."""
    from headwater.config import MigrationSettings
    from headwater.runtime.migrations import ModelFollower

    follower = ModelFollower(store=_migration_store(process), handlers=process.handlers, pool=pool)
    follower.step()
    _in_background(process, "model-follower", follower.run, MigrationSettings().poll_s)


def _in_background(
    process: ServiceProcess,
    name: str,
    run: Callable[..., None],
    poll_s: float,
    *,
    first: Callable[[asyncio.AbstractEventLoop], None] | None = None,
) -> None:
    """Run `run(stop, poll_s=)` on a thread once the broker is up; stopped first on shutdown."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(stop,), kwargs={"poll_s": poll_s}, name=name, daemon=True)

    def start(loop: asyncio.AbstractEventLoop) -> None:
        if first is not None:
            first(loop)
        thread.start()

    def halt() -> None:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=30)

    process.starters.append(start)
    process.halts.append(halt)


def _connect_db(settings: HeadwaterSettings) -> Callable[[], psycopg.Connection[Any]]:
    return state_connector(settings)


def _open_index(settings: HeadwaterSettings, *, read_only: bool) -> VectorIndex:
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        from services.indexer.adapters.qdrant import QdrantIndex

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantIndex(QdrantClient(url=settings.qdrant_url, api_key=key))
    if read_only:
        raise SystemExit(
            "`headwater run query` needs a Qdrant server (HEADWATER_QDRANT_URL): the embedded engine "
            "can be opened by one process only; run `headwater run index-node` instead"
        )
    from services.indexer.adapters.edge import EdgeIndex

    return EdgeIndex(settings.index_dir)


def _freshness_observer(records: list[Any]) -> None:
    now_ms = time.time() * 1000
    for record in records:
        accepted = codec.header_dict(record.headers).get(codec.ACCEPTED_AT)
        if accepted and accepted.isdigit():
            metrics.INTAKE_TO_INDEX_SECONDS.observe(max(0.0, now_ms - int(accepted)) / 1000)
