"""Signed webhooks over HTTP on the embedded runtime: accepted deliveries become searchable, every
refused one gets its status as problem+json and never reaches the journal, a retried delivery is
acknowledged without being processed twice, and a rotated secret overlaps its successor."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headwater.runtime.embedded import EmbeddedHeadwater
from headwater.runtime.embedded.http_app import create_app
from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore
from services.ingest.webhooks import WebhookSecret, new_secret, register_source, sign
from services.query.config import AccessSettings
from tests.e2e.conftest import RuntimeFactory

KEY = new_secret()


@pytest.fixture
def runtime(make_runtime: RuntimeFactory) -> EmbeddedHeadwater:
    return make_runtime()


@pytest.fixture
def store(runtime: EmbeddedHeadwater) -> Iterator[PostgresWebhookStore]:
    """Where the app reads webhook sources: the runtime's Postgres, with one source `crm` → acme."""
    s = PostgresWebhookStore(runtime.parts.connect)
    s.ensure_schema()
    s.create_source(register_source(name="crm", tenant="acme", key=KEY, now=datetime.now(UTC)))
    yield s
    s.close()


@pytest.fixture
def app(runtime: EmbeddedHeadwater, store: PostgresWebhookStore, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("HEADWATER_WEBHOOK_MAX_BODY_BYTES", "4096")
    return create_app(runtime, access=AccessSettings(auth="disabled"))


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def signed(body: bytes, *, webhook_id: str, key: bytes = KEY, skew_s: int = 0) -> dict[str, str]:
    timestamp = int(time.time()) + skew_s
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }


def doc(document_id: str = "d1", **fields: Any) -> bytes:
    # Spacing no serialiser would reproduce: verification must be over these exact bytes.
    text = fields.pop("text", "Invoices are due in 30 days.")
    extra = "".join(f', "{k}" :{json.dumps(v)}' for k, v in fields.items())
    return f'{{ "document_id":"{document_id}",  "text" : "{text}"{extra} }}'.encode()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def hits(client: TestClient, tenant: str, query: str) -> list[dict[str, Any]]:
    response = client.post("/v1/search", json={"tenant": tenant, "query": query, "mode": "sparse"})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["hits"]
    return found


def test_a_signed_delivery_is_accepted_and_searchable_in_its_sources_tenant(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    body = doc()

    response = client.post("/v1/webhooks/crm", content=body, headers=signed(body, webhook_id="msg_1"))

    assert response.status_code == 202, response.text
    assert (response.json()["tenant"], response.json()["document_id"]) == ("acme", "d1")
    assert runtime.wait_idle(timeout=120)
    assert [h["document_id"] for h in hits(client, "acme", "invoices due")] == ["d1"]
    assert hits(client, "globex", "invoices due") == []


def test_a_retried_delivery_is_acknowledged_and_processed_once(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    body = doc()  # no version: a second processing would index a newer version of d1
    first = client.post("/v1/webhooks/crm", content=body, headers=signed(body, webhook_id="msg_retry"))
    assert first.status_code == 202
    assert runtime.wait_idle(timeout=120)

    # The sender's retries: the same id and body, signed afresh a little later, and one exact replay.
    retry = client.post(
        "/v1/webhooks/crm", content=body, headers=signed(body, webhook_id="msg_retry", skew_s=2)
    )
    replay = client.post("/v1/webhooks/crm", content=body, headers=first.request.headers)
    assert (retry.status_code, replay.status_code) == (202, 202)
    assert retry.json() == replay.json() == first.json()
    assert runtime.wait_idle(timeout=120)

    assert runtime.completed == 1  # one change went through the pipeline
    (hit,) = hits(client, "acme", "invoices due")
    assert hit["version"] == first.json()["version"]


def test_refused_deliveries_get_their_status_and_reach_nothing(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    body = doc()
    good = signed(body, webhook_id="msg_bad")
    no_id = {k: v for k, v in good.items() if k != "webhook-id"}
    refused = [
        ("forged", "crm", body, signed(body, webhook_id="msg_bad", key=new_secret()), 401),
        ("tampered", "crm", body.replace(b"30", b"90"), good, 401),
        ("unknown source", "erp", body, good, 401),
        ("expired", "crm", body, signed(body, webhook_id="msg_bad", skew_s=-301), 401),
        ("from the future", "crm", body, signed(body, webhook_id="msg_bad", skew_s=301), 401),
        ("no signature", "crm", body, {k: v for k, v in good.items() if k != "webhook-signature"}, 401),
        ("no id", "crm", body, no_id, 400),
        ("timestamp hello", "crm", body, {**good, "webhook-timestamp": "hello"}, 400),
        ("wrong type", "crm", body, {**good, "content-type": "text/plain"}, 415),
        ("form", "crm", body, {**good, "content-type": "application/x-www-form-urlencoded"}, 415),
        ("latin-1", "crm", body, {**good, "content-type": "application/json; charset=latin-1"}, 415),
        ("oversize", "crm", doc(text="x" * 5000), signed(doc(text="x" * 5000), webhook_id="msg_big"), 413),
        ("other tenant", "crm", doc(tenant="globex"), signed(doc(tenant="globex"), webhook_id="msg_t"), 403),
        ("empty document", "crm", doc(text=" "), signed(doc(text=" "), webhook_id="msg_e"), 422),
    ]
    for name, source, content, headers, status in refused:
        response = client.post(f"/v1/webhooks/{source}", content=content, headers=headers)
        assert response.status_code == status, (name, response.text)
        problem(response, status)

    time.sleep(0.5)
    assert runtime.journal.backlog() == 0 and runtime.completed == 0  # nothing was accepted
    # A charset parameter spelled out is fine, and the genuine delivery still goes through.
    ok = client.post(
        "/v1/webhooks/crm", content=body, headers={**good, "content-type": "application/json; charset=UTF-8"}
    )
    assert ok.status_code == 202, ok.text


def test_a_source_over_its_rate_gets_429_with_retry_after(
    runtime: EmbeddedHeadwater, store: PostgresWebhookStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_WEBHOOK_RATE_PER_SECOND", "0.01")
    monkeypatch.setenv("HEADWATER_WEBHOOK_RATE_BURST", "1")
    client = TestClient(create_app(runtime, access=AccessSettings(auth="disabled")))
    first, second = doc("d1"), doc("d2")

    assert (
        client.post("/v1/webhooks/crm", content=first, headers=signed(first, webhook_id="a")).status_code
        == 202
    )
    response = client.post("/v1/webhooks/crm", content=second, headers=signed(second, webhook_id="b"))

    problem(response, 429)
    assert int(response.headers["retry-after"]) >= 1


def test_a_rotated_secret_overlaps_its_successor_then_stops(
    client: TestClient, store: PostgresWebhookStore
) -> None:
    new_key = new_secret()
    now = datetime.now(UTC)
    store.add_secret(
        "crm", WebhookSecret(key=new_key, created_at=now), others_expire_at=now + timedelta(hours=1)
    )
    body = doc()

    old_only = signed(body, webhook_id="r1")
    new_only = signed(body, webhook_id="r2", key=new_key)
    both = {**old_only, "webhook-id": "r3"}
    ts = int(both["webhook-timestamp"])
    both["webhook-signature"] = " ".join(
        [
            sign(KEY, webhook_id="r3", timestamp=ts, body=body),
            sign(new_key, webhook_id="r3", timestamp=ts, body=body),
        ]
    )
    for headers in (old_only, new_only, both):
        assert client.post("/v1/webhooks/crm", content=body, headers=headers).status_code == 202

    # End the overlap now (`headwater webhooks rotate --keep-old-for 0` does this too).
    newest = new_secret()
    store.add_secret("crm", WebhookSecret(key=newest, created_at=now), others_expire_at=datetime.now(UTC))
    for key in (KEY, new_key):
        problem(
            client.post("/v1/webhooks/crm", content=body, headers=signed(body, webhook_id="r4", key=key)), 401
        )
    assert (
        client.post(
            "/v1/webhooks/crm", content=body, headers=signed(body, webhook_id="r5", key=newest)
        ).status_code
        == 202
    )


def test_an_oversize_body_is_refused_before_it_is_buffered(app: FastAPI) -> None:
    """Straight at the ASGI app, to count how much of a streamed body (no Content-Length) it pulls."""
    body = doc()
    headers = signed(body, webhook_id="msg_stream")
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": pulled < 10_000}  # 10 MB offered

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    def scope(extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/webhooks/crm",
            "raw_path": b"/v1/webhooks/crm",
            "query_string": b"",
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()] + extra,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }

    asyncio.run(app(scope([]), receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert pulled <= 4096 // 1024 + 1  # stopped just past the 4 KiB limit

    # A declared length over the limit is refused without reading the body at all.
    pulled, sent = 0, []
    asyncio.run(app(scope([(b"content-length", b"2000000")]), receive, send))
    assert sent[0]["status"] == 413 and pulled == 0
