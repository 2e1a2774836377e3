"""The embedded runtime's HTTP surface: intake and query on one port."""

from __future__ import annotations

from fastapi import FastAPI

from headwater import __version__
from headwater.http import BodySizeLimit, install_problem_handlers
from headwater.runtime.embedded import EmbeddedHeadwater
from schemas.documents import MAX_DOCUMENT_BYTES
from services.ingest.errors import IngestError
from services.ingest.routes import router as intake_router
from services.query.errors import QueryError
from services.query.routes import router as query_router


def create_app(runtime: EmbeddedHeadwater, *, max_body_bytes: int = MAX_DOCUMENT_BYTES * 2) -> FastAPI:
    """A FastAPI app over a started runtime (base64 bodies are a third larger than the document)."""
    app = FastAPI(
        title="Headwater", version=__version__, description="Intake and hybrid search, embedded runtime."
    )
    app.state.intake = runtime.intake
    app.state.query_service = runtime.query
    install_problem_handlers(app, domain_errors=(IngestError, QueryError))
    app.include_router(intake_router)
    app.include_router(query_router)

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
            from headwater.http import problem

            return problem(503, "Not ready", stages=alive)  # type: ignore[return-value]
        return {"status": "ready", "stages": alive, "backlog": runtime.journal.backlog()}

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app
