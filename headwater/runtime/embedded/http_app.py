"""The embedded runtime's HTTP surface: intake and query on one port."""

from __future__ import annotations

from fastapi import FastAPI

from headwater import __version__
from headwater.kernel.problems import BodySizeLimit, install_problem_handlers
from headwater.observability import metrics
from headwater.observability.tracing import FASTAPI_TELEMETRY, TracingMiddleware
from headwater.runtime.embedded import EmbeddedHeadwater
from schemas.documents import MAX_DOCUMENT_BYTES
from services.ingest.errors import IngestError
from services.ingest.routes import router as intake_router
from services.ingest.webhook_routes import install_webhooks
from services.query.config import AccessSettings
from services.query.entities_routes import router as entities_router
from services.query.errors import QueryError
from services.query.ports import KeyStore
from services.query.routes import install_access
from services.query.routes import router as query_router


def create_app(
    runtime: EmbeddedHeadwater,
    *,
    max_body_bytes: int = MAX_DOCUMENT_BYTES * 2,
    access: AccessSettings | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """A FastAPI app over a started runtime (base64 bodies are a third larger than the document).

    Search needs an API key from `keys` (default: the runtime's Postgres) unless `access.auth` is
    disabled, which only the local and test environments allow.
    """
    app = FastAPI(
        title="Headwater",
        version=__version__,
        description="Intake and hybrid search, embedded runtime.",
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.intake = runtime.intake
    app.state.query_service = runtime.query
    install_problem_handlers(app, domain_errors=(IngestError, QueryError))
    install_access(
        app,
        settings=access or AccessSettings(),
        environment=runtime.parts.settings.environment,
        connect=runtime.parts.connect,
        keys=keys,
    )
    app.include_router(intake_router)
    install_webhooks(app, intake=runtime.intake, connect=runtime.parts.connect)
    app.include_router(query_router)
    app.include_router(entities_router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> dict[str, object]:
        """Every stage thread is alive and the index is open."""
        alive = {w.stage: w.is_alive() for w in runtime.workers} | {"feeder": runtime.feeder_alive()}
        ready = all(alive.values())
        if not ready:
            from headwater.kernel.problems import problem

            return problem(503, "Not ready", stages=alive)  # type: ignore[return-value]
        return {"status": "ready", "stages": alive, "backlog": runtime.journal.backlog()}

    metrics.install_metrics_route(
        app, before_scrape=lambda: metrics.JOURNAL_BACKLOG.set(runtime.journal.backlog())
    )

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(TracingMiddleware)  # outermost: a request's span covers everything it does
    return app
