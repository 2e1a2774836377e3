"""HTTP routes of the query service: thin shells over `QueryService`, behind API-key access control."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from headwater.kernel.problems import problem
from headwater.kernel.ratelimit import RateLimit, RateLimiter
from headwater.observability import metrics
from schemas import SearchPage, SearchRequest
from services.query.access import AccessControl, Caller, parse_token, scope_request
from services.query.config import AccessSettings
from services.query.errors import AccessError, AccessNotConfigured
from services.query.ports import KeyStore
from services.query.querylog import log_refusal, log_search
from services.query.service import QueryService

router = APIRouter()

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer hw_…`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same API key")


def get_query_service(request: Request) -> QueryService:
    service: QueryService = request.app.state.query_service
    return service


def get_access(request: Request) -> AccessControl:
    # Fail closed: an app that mounts these routes without `install_access` must not search unscoped.
    access: AccessControl | None = getattr(request.app.state, "access", None)
    if access is None:
        raise AccessNotConfigured("this server mounts the search API without access control")
    return access


def get_caller(
    access: Annotated[AccessControl, Depends(get_access)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> Caller | None:
    """The caller behind the request's API key, rate limit spent; None when access control is off."""
    token = bearer.credentials if bearer else api_key
    try:
        return access.admit(token)
    except AccessError as exc:
        parsed = parse_token(token) if token else None
        log_refusal(status=exc.status, reason=str(exc), key_id=parsed[0] if parsed else None)
        raise


QueryServiceDep = Annotated[QueryService, Depends(get_query_service)]
CallerDep = Annotated[Caller | None, Depends(get_caller)]


@router.post("/v1/search", response_model=SearchPage, tags=["query"])
def search(body: SearchRequest, service: QueryServiceDep, caller: CallerDep) -> SearchPage:
    """Hybrid, dense or sparse search inside the API key's tenant and ACL groups; soft-deleted chunks
    are never returned. The body's `tenant` must be the key's, and `acl` may only narrow its groups."""
    try:
        request = scope_request(body, caller)
    except AccessError as exc:
        log_refusal(status=exc.status, reason=str(exc), key_id=caller.key_id if caller else None)
        raise
    started, ok = time.perf_counter(), False
    try:
        page = service.search(request)
        ok = True
    finally:
        metrics.observe_query(
            mode=request.mode.value,
            graph=request.graph,
            rerank=request.rerank,
            ok=ok,
            seconds=time.perf_counter() - started,
        )
    log_search(caller=caller, request=request, page=page)
    return page


def install_access(
    app: FastAPI,
    *,
    settings: AccessSettings,
    environment: str,
    connect: Callable[[], psycopg.Connection[Any]] | None = None,
    keys: KeyStore | None = None,
) -> AccessControl:
    """Put access control on an app that mounts these routes: API keys from `keys`, else from Postgres
    through `connect`; none at all when `settings.auth` is disabled (refused outside local and test)."""
    store: KeyStore | None = None
    if settings.auth_required(environment=environment):
        if keys is None:
            if connect is None:
                raise ValueError("API keys need a key store or a Postgres connection")
            from services.query.adapters.keys_postgres import PostgresKeyStore

            pg_keys = PostgresKeyStore(connect)
            pg_keys.ensure_schema()
            keys = pg_keys
        store = keys
    limiter = RateLimiter(default=RateLimit(settings.rate_per_second, settings.rate_burst))
    access = app.state.access = AccessControl(keys=store, limiter=limiter)

    async def on_access_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AccessError)
        response = problem(exc.status, exc.title, str(exc))
        response.headers.update(exc.headers())
        return response

    # More specific than the QueryError handler, so it wins for these errors and adds their headers.
    app.add_exception_handler(AccessError, on_access_error)
    return access
