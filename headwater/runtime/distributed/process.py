"""One `headwater run` process: its broker, its stage consumer, its HTTP app, and the order things start and
stop in. `bootstrap.build_service` fills one in."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from headwater import __version__
from headwater.config import HeadwaterSettings, KafkaSettings
from headwater.kernel.problems import BodySizeLimit, install_problem_handlers
from headwater.observability import metrics, tracing
from headwater.runtime.distributed import HTTP_SERVICES
from headwater.runtime.distributed.change_log import KafkaChangeLog
from headwater.runtime.distributed.consumer import StageConsumer
from headwater.runtime.handlers import StageHandlers
from schemas.documents import MAX_DOCUMENT_BYTES
from services.ingest.errors import IngestError
from services.ingest.service import IntakeService
from services.query.config import AccessSettings
from services.query.errors import QueryError
from services.query.service import QueryService

logger = logging.getLogger(__name__)
Connect = Callable[[], psycopg.Connection[Any]]


@dataclass
class ServiceProcess:
    """What one `headwater run` process holds; `serve` runs it until SIGTERM/SIGINT."""

    name: str
    settings: HeadwaterSettings
    kafka: KafkaSettings
    handlers: StageHandlers
    broker: KafkaBroker
    connect: Connect  # the shared state database (keys, webhook sources, graph, registry)
    access: AccessSettings = field(default_factory=AccessSettings)
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
            install_webhooks(app, intake=app.state.intake, connect=self.connect)
        if self.query is not None:
            from services.query.routes import install_access

            app.state.query_service = self.query
            app.include_router(query_router)
            install_access(
                app, settings=self.access, environment=self.settings.environment, connect=self.connect
            )

        @app.get("/healthz", tags=["ops"])
        def healthz() -> dict[str, str]:
            """The process is up."""
            return {"status": "ok", "service": self.name}

        metrics.install_metrics_route(app)  # the same registry as the metrics port

        app.add_middleware(BodySizeLimit, max_bytes=MAX_DOCUMENT_BYTES * 2)
        app.add_middleware(tracing.TracingMiddleware)
        return app
