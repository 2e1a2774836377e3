"""HTTP webhook intake: `POST /v1/webhooks/{source}`, signed as Standard Webhooks specifies.

The body is read here as raw bytes, within the webhook size limit, and verified as received; it is
parsed only after its signature checks out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Path, Request, status
from starlette.concurrency import run_in_threadpool

from schemas import Accepted
from services.ingest.config import WebhookSettings
from services.ingest.errors import UnsupportedContentType, WebhookTooLarge
from services.ingest.ports import WebhookStore
from services.ingest.service import IntakeService
from services.ingest.webhook_service import WebhookIntake

router = APIRouter()


def get_webhooks(request: Request) -> WebhookIntake:
    webhooks: WebhookIntake = request.app.state.webhooks
    return webhooks


WebhookIntakeDep = Annotated[WebhookIntake, Depends(get_webhooks)]
SourceName = Annotated[
    str, Path(max_length=64, description="the name `headwater webhooks create` registered")
]

_SIGNED = {
    "description": "Standard Webhooks headers: `webhook-id`, `webhook-timestamp` (Unix seconds) and "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated for several)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestDocument"}}},
}


@router.post(
    "/v1/webhooks/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    tags=["intake"],
    openapi_extra={"requestBody": {"required": True, **_SIGNED}},
)
async def receive_webhook(source: SourceName, request: Request, webhooks: WebhookIntakeDep) -> Accepted:
    """Accept a signed document change from a registered source (202 once durable; the same
    `webhook-id` again is acknowledged without being processed twice). `tenant` may be left out: it is
    the source's."""
    _require_json(request.headers.get("content-type"))
    body = await _read_body(request, limit=webhooks.settings.max_body_bytes)
    headers = dict(request.headers)
    # Off the event loop: accepting blocks on the journal or on the broker's acknowledgement, and the
    # Kafka producer runs on this loop.
    return await run_in_threadpool(webhooks.deliver, source, headers=headers, body=body)


def install_webhooks(
    app: FastAPI,
    *,
    intake: IntakeService,
    connect: Callable[[], psycopg.Connection[Any]] | None = None,
    store: WebhookStore | None = None,
    settings: WebhookSettings | None = None,
) -> WebhookIntake:
    """Mount the webhook route on an app that has intake: sources from `store`, else from Postgres."""
    if store is None:
        if connect is None:
            raise ValueError("webhooks need a store or a Postgres connection")
        from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore

        pg_store = PostgresWebhookStore(connect)
        pg_store.ensure_schema()
        store = pg_store
    webhooks = app.state.webhooks = WebhookIntake(
        store=store, intake=intake, settings=settings or WebhookSettings()
    )
    app.include_router(router)
    return webhooks


def _require_json(content_type: str | None) -> None:
    media_type, *params = (content_type or "").lower().split(";")
    charsets = [p.partition("=")[2].strip().strip('"') for p in params if p.strip().startswith("charset=")]
    if media_type.strip() != "application/json" or any(c not in ("utf-8", "utf8") for c in charsets):
        raise UnsupportedContentType("a webhook body is application/json (UTF-8)")


async def _read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` (declared or not)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookTooLarge(f"the limit is {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise WebhookTooLarge(f"the limit is {limit} bytes")
    return bytes(body)
