"""Composition root of the distributed runtime: `headwater run <service>` builds one process.

Each consumer service is one stage's handler (the same handler objects the embedded runtime runs) behind
a `StageConsumer`. `ingest` adds the HTTP intake, `query` is the gateway over a Qdrant server, and
`index-node` runs indexer and gateway in one process over the embedded engine, which only one process may
open (the local stack, and small deployments). Every setting is read once, here, and every part is built
once, with what it needs handed in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaBroker

from headwater.config import HeadwaterSettings, KafkaSettings, MigrationSettings
from headwater.observability import metrics
from headwater.runtime import parts as build_parts
from headwater.runtime.batches import BatchRetryPolicy
from headwater.runtime.distributed import SERVICES, codec
from headwater.runtime.distributed.consumer import StageConsumer
from headwater.runtime.distributed.process import Connect, ServiceProcess
from headwater.runtime.handlers import TRANSIENT, StageHandlers
from headwater.runtime.state import state_connector
from services.chunker.config import ChunkerSettings
from services.embedder.config import EmbedderSettings
from services.embedder.factory import build_backend, build_sparse_encoder
from services.embedder.pool import BackendPool
from services.indexer.ports import VectorIndex
from services.query.config import AccessSettings, QuerySettings

logger = logging.getLogger(__name__)


def build_service(
    name: str,
    *,
    settings: HeadwaterSettings | None = None,
    kafka: KafkaSettings | None = None,
    embedder: EmbedderSettings | None = None,
    chunker: ChunkerSettings | None = None,
    query: QuerySettings | None = None,
    access: AccessSettings | None = None,
    migration: MigrationSettings | None = None,
) -> ServiceProcess:
    """Only the parts the service's stage needs are built (the chunker never loads spaCy, etc.)."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    settings = settings or HeadwaterSettings()
    kafka = kafka or KafkaSettings()
    embedder = embedder or EmbedderSettings()
    chunker = chunker or ChunkerSettings()
    migration = migration or MigrationSettings()
    stage = SERVICES[name]
    connect = state_connector(settings)
    pool = BackendPool(embedder)  # every model this process embeds with, built once
    handlers = _stage_handlers(
        stage, settings=settings, embedder=embedder, chunker=chunker, connect=connect, pool=pool
    )
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
        connect=connect,
        access=access or AccessSettings(),
    )
    if handlers.index is not None:
        process.closers.append(handlers.index.index.close)
        _coordinate_migrations(process, pool, embedder=embedder, migration=migration)
    if handlers.embed is not None:
        _follow_readers_model(process, pool, migration=migration)
    if name == "query":
        index = build_parts.open_index(settings, read_only=True)
        process.closers.append(index.close)
        process.query = _query_service(process, index, pool, embedder=embedder, query=query)
    elif name == "index-node":
        assert handlers.index is not None
        process.query = _query_service(process, handlers.index.index, pool, embedder=embedder, query=query)
    _compact(process, stage)
    if stage is not None:
        process.consumer = StageConsumer(
            stage=stage,
            handler=handlers.for_stage(stage),
            kafka=kafka,
            policy=BatchRetryPolicy(transient=TRANSIENT, max_attempts=settings.max_attempts),
            after_batch=_freshness_observer if stage == "indexer" else None,
        )
        process.consumer.register(process.broker)
    if stage == "ingest":
        from headwater.observability.replication import start_slot_monitor
        from headwater.runtime.distributed.cdc import attach_cdc_consumer

        attach_cdc_consumer(process)  # only with HEADWATER_CDC_MAPPINGS
        if (monitor := start_slot_monitor()) is not None:  # only with HEADWATER_CDC_SOURCE_URL
            process.closers.append(monitor.stop)
    return process


def _stage_handlers(
    stage: str | None,
    *,
    settings: HeadwaterSettings,
    embedder: EmbedderSettings,
    chunker: ChunkerSettings,
    connect: Connect,
    pool: BackendPool,
) -> StageHandlers:
    """The one handler this process's stage runs, with its adapters."""
    if stage == "ingest":
        from services.ingest.handlers import RedactStage
        from services.ingest.redaction import Redactor

        return StageHandlers(
            redact=RedactStage(Redactor(secret=settings.pii_secret.get_secret_value().encode()))
        )
    if stage == "chunker":
        from services.chunker.handlers import ChunkStage

        encoder = build_parts.boundary_encoder_for(chunker, embedder, build_backend(embedder))
        return StageHandlers(chunk=ChunkStage(chunker, encode=encoder.embed))
    if stage == "embedder":
        from services.embedder.handlers import EmbedStage

        return StageHandlers(
            embed=EmbedStage(
                backend=pool.add(build_backend(embedder)),
                cache=build_parts.embedding_cache(connect),
                sparse=build_sparse_encoder(embedder),
                settings=embedder,
            )
        )
    if stage == "graph_builder":
        from services.graph_builder.handlers import EnrichStage

        return StageHandlers(enrich=EnrichStage(build_parts.graph_store(connect)))
    if stage == "indexer":
        from services.indexer.handlers import IndexStage

        return StageHandlers(
            index=IndexStage(
                index=build_parts.open_index(settings),
                alias=settings.collection_alias,
                metadata_indexes=settings.metadata_indexes,
                registry=build_parts.migration_store(connect),
            )
        )
    return StageHandlers()


def _query_service(
    process: ServiceProcess,
    index: VectorIndex,
    pool: BackendPool,
    *,
    embedder: EmbedderSettings,
    query: QuerySettings | None,
) -> Any:
    from headwater.runtime.migrations import CollectionModels

    settings = process.settings
    backend = pool.add(build_backend(embedder))
    registry = build_parts.migration_store(process.connect)
    process.closers.append(registry.close)
    return build_parts.query_service(
        query or QuerySettings(),
        index=index,
        alias=settings.collection_alias,
        backend=backend,
        sparse=build_sparse_encoder(embedder),
        graph_store=build_parts.graph_store(process.connect),  # the graph stage writes it
        models=CollectionModels(store=registry, pool=pool, default=backend, alias=settings.collection_alias),
    )


def _coordinate_migrations(
    process: ServiceProcess,
    pool: BackendPool,
    *,
    embedder: EmbedderSettings,
    migration: MigrationSettings,
) -> None:
    """The index writer carries out model migrations: alias moves, both collections written, and the
    migration consumer that backfills and re-embeds (see `distributed/migration_consumer.py`)."""
    from headwater.runtime.distributed.migration_consumer import MigrationConsumers
    from headwater.runtime.migrations import MigrationCoordinator

    indexing = process.handlers.index
    assert indexing is not None
    assert indexing.registry is not None
    process.closers.append(indexing.registry.close)
    consumers = MigrationConsumers(process)
    coordinator = MigrationCoordinator(
        store=indexing.registry,
        indexing=indexing,
        pool=pool,
        cache=build_parts.embedding_cache(process.connect),
        embedder=embedder,
        copy_backfill=False,
        on_migration=consumers.switch,
    )
    consumers.coordinator = coordinator
    coordinator.step()  # the recorded state is in force before the first batch
    _Background("migrations", coordinator.run, migration.poll_s, first=consumers.bind).attach(process)
    process.halts.append(consumers.stop)


def _follow_readers_model(
    process: ServiceProcess, pool: BackendPool, *, migration: MigrationSettings
) -> None:
    """The embedding stage embeds with the model the readers' collection holds, so after a cutover new
    changes go into the target as they are (see `headwater.runtime.migrations`)."""
    from headwater.runtime.migrations import ModelFollower

    assert process.handlers.embed is not None
    store = build_parts.migration_store(process.connect)
    process.closers.append(store.close)
    follower = ModelFollower(
        store=store, embedding=process.handlers.embed, pool=pool, alias=process.settings.collection_alias
    )
    follower.step()
    _Background("model-follower", follower.run, migration.poll_s).attach(process)


def _compact(process: ServiceProcess, stage: str | None) -> None:
    """The index writer compacts its index (the edge engine opens in one process only), the graph writer
    its graph; HEADWATER_INDEXER_COMPACT_INTERVAL_S=0 turns both off."""
    if stage not in ("indexer", "graph_builder"):
        return
    from headwater.operations.compaction import postgres_graph
    from headwater.runtime.compaction import compaction_job

    indexing = process.handlers.index
    job = compaction_job(
        index=indexing.index if indexing is not None else None,
        collection=indexing.written_collections
        if indexing is not None
        else process.settings.collection_alias,
        graph=postgres_graph(process.connect) if stage == "graph_builder" else None,
    )
    if job is not None:
        job.start()
        process.closers.insert(0, job.stop)  # stopped before the index closes


class _Background:
    """`run(stop, poll_s=)` on a thread once the broker is up; stopped first on shutdown."""

    def __init__(
        self,
        name: str,
        run: Callable[..., None],
        poll_s: float,
        *,
        first: Callable[[asyncio.AbstractEventLoop], None] | None = None,
    ) -> None:
        self._stop = threading.Event()
        self._first = first
        self._thread = threading.Thread(
            target=run, args=(self._stop,), kwargs={"poll_s": poll_s}, name=name, daemon=True
        )

    def attach(self, process: ServiceProcess) -> None:
        process.starters.append(self._start)
        process.halts.append(self._halt)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._first is not None:
            self._first(loop)
        self._thread.start()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def _freshness_observer(records: list[Any]) -> None:
    now_ms = time.time() * 1000
    for record in records:
        accepted = codec.header_dict(record.headers).get(codec.ACCEPTED_AT)
        if accepted and accepted.isdigit():
            metrics.INTAKE_TO_INDEX_SECONDS.observe(max(0.0, now_ms - int(accepted)) / 1000)
