"""The HTTP surface of the embedded runtime: 202 on durable accept, API keys on search (tenant and ACL
from the key, inside the vector query), request limits, rate limits, problem+json on bad input."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from headwater.kernel.ratelimit import RateLimit
from headwater.runtime.embedded import EmbeddedHeadwater
from headwater.runtime.embedded.http_app import create_app
from services.query.access import issue_key
from services.query.adapters.keys_postgres import PostgresKeyStore
from services.query.config import AccessSettings
from tests.e2e.conftest import RuntimeFactory


@pytest.fixture
def runtime(make_runtime: RuntimeFactory) -> EmbeddedHeadwater:
    return make_runtime()


@pytest.fixture
def client(runtime: EmbeddedHeadwater) -> TestClient:
    return TestClient(create_app(runtime, max_body_bytes=64 * 1024))


def _key(
    runtime: EmbeddedHeadwater, tenant: str, groups: Sequence[str] = (), rate: RateLimit | None = None
) -> dict[str, str]:
    """Authorization headers of a new key, stored where the app reads keys (the runtime's Postgres)."""
    store = PostgresKeyStore(runtime.parts.connect)
    store.ensure_schema()
    key, token = issue_key(tenant=tenant, acl_groups=list(groups), now=datetime.now(UTC), rate_limit=rate)
    store.add(key)
    store.close()
    return {"Authorization": f"Bearer {token}"}


def _ingest(client: TestClient, runtime: EmbeddedHeadwater, *documents: dict[str, Any]) -> None:
    for document in documents:
        assert client.post("/v1/documents", json=document).status_code == 202
    assert runtime.wait_idle(timeout=120)


def _ids(client: TestClient, headers: dict[str, str], **body: Any) -> set[str]:
    response = client.post(
        "/v1/search", json={"query": "invoices due", "mode": "sparse", **body}, headers=headers
    )
    assert response.status_code == 200, response.text
    return {hit["document_id"] for hit in response.json()["hits"]}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    return body


def test_accept_then_search_over_http(client: TestClient, runtime: EmbeddedHeadwater) -> None:
    response = client.post(
        "/v1/documents", json={"tenant": "acme", "document_id": "d1", "text": "Invoices are due in 30 days."}
    )
    assert response.status_code == 202
    assert response.json()["document_id"] == "d1"
    assert runtime.wait_idle(timeout=120)

    response = client.post(
        "/v1/search", json={"tenant": "acme", "query": "invoices due"}, headers=_key(runtime, "acme")
    )

    hits = response.json()["hits"]
    assert hits[0]["document_id"] == "d1" and "sparse" in hits[0]["retrievers"]


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    openapi = client.get("/openapi.json").json()
    assert "/v1/search" in openapi["paths"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(openapi["components"]["securitySchemes"])


def test_search_needs_a_valid_key(client: TestClient, runtime: EmbeddedHeadwater) -> None:
    body = {"tenant": "acme", "query": "invoices"}
    good = _key(runtime, "acme")
    token = good["Authorization"].removeprefix("Bearer ")
    _, unknown = issue_key(tenant="acme", now=datetime.now(UTC))  # well formed, never stored
    refused = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {unknown}"},
        {"Authorization": good["Authorization"][:-1] + ("A" if token[-1] != "A" else "B")},  # forged secret
        {"X-API-Key": "hw_nonsense"},
    ]
    for headers in refused:
        problem = _problem(client.post("/v1/search", json=body, headers=headers), 401)
        assert token not in str(problem)
    response = client.post("/v1/search", json=body)
    assert response.headers["www-authenticate"] == "Bearer"
    # An unauthenticated caller learns nothing about the body, not even that it is invalid.
    _problem(client.post("/v1/search", json={"top_k": 10**6}), 401)

    assert client.post("/v1/search", json=body, headers=good).status_code == 200
    assert client.post("/v1/search", json=body, headers={"X-API-Key": token}).status_code == 200
    store = PostgresKeyStore(runtime.parts.connect)
    store.revoke(token.split("_")[1], at=datetime.now(UTC))
    store.close()
    _problem(client.post("/v1/search", json=body, headers=good), 401)


def test_a_key_sees_its_own_tenant_and_acl_groups_only(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    _ingest(
        client,
        runtime,
        {"tenant": "acme", "document_id": "acme-public", "text": "Invoices are due in 30 days."},
        {
            "tenant": "acme",
            "document_id": "acme-finance",
            "text": "Invoices of the finance team are due in 15 days.",
            "acl": ["finance"],
        },
        {"tenant": "globex", "document_id": "globex-public", "text": "Invoices are due in 60 days."},
    )
    acme_public = _key(runtime, "acme")
    acme_finance = _key(runtime, "acme", ["finance", "hr"])
    acme_hr = _key(runtime, "acme", ["hr"])
    globex = _key(runtime, "globex", ["finance"])

    assert _ids(client, acme_public, tenant="acme") == {"acme-public"}
    assert _ids(client, acme_finance, tenant="acme") == {"acme-public", "acme-finance"}
    assert _ids(client, acme_hr, tenant="acme") == {"acme-public"}
    assert _ids(client, globex, tenant="globex") == {"globex-public"}
    # `acl` narrows the key's groups; it cannot add one.
    assert _ids(client, acme_finance, tenant="acme", acl=["hr"]) == {"acme-public"}
    assert _ids(client, acme_finance, tenant="acme", acl=[]) == {"acme-public"}
    search = {"query": "invoices due", "mode": "sparse"}
    _problem(
        client.post("/v1/search", json={**search, "tenant": "acme", "acl": ["finance"]}, headers=acme_hr), 403
    )
    # Another tenant's key cannot search this tenant, even naming it or filtering on its documents.
    _problem(client.post("/v1/search", json={**search, "tenant": "acme"}, headers=globex), 403)
    filtered = {"document_ids": ["acme-public", "acme-finance"]}
    assert _ids(client, globex, tenant="globex", filters=filtered) == set()


def test_out_of_range_requests_get_422_not_silent_clamping(runtime: EmbeddedHeadwater) -> None:
    client = TestClient(create_app(runtime))  # the default body limit, so the 100 KB query reaches validation
    headers = _key(runtime, "acme")
    search = {"tenant": "acme", "query": "invoices"}
    too_much: list[dict[str, Any]] = [
        {"top_k": 10**6},
        {"top_k": 0},
        {"query": "invoices " * 12_000},  # ~100 KB
        {"query": ""},
        {"offset": 990, "top_k": 20},
        {"rerank_depth": 10**4},
        {"graph_hops": 5},
        {"filters": {"match": [{"key": f"k{i}", "value": "v"} for i in range(17)]}},
        {"filters": {"match": [{"key": "k", "any": list(range(10_000))}]}},
        {"filters": {"range": [{"key": f"k{i}", "gte": 1} for i in range(17)]}},
        {"filters": {"document_ids": [f"d{i}" for i in range(1001)]}},
        {"filters": {"document_ids": ["d" * 513]}},
        {"acl": [f"g{i}" for i in range(65)]},
        {"acl": ["g" * 129]},
        {"tennant": "acme"},
    ]
    for extra in too_much:
        problem = _problem(client.post("/v1/search", json={**search, **extra}, headers=headers), 422)
        assert problem["errors"], extra
        assert "invoices invoices" not in str(problem)  # values are never echoed
    _problem(client.post("/v1/search", json={"query": "no tenant"}, headers=headers), 422)


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    limited = _key(runtime, "acme", rate=RateLimit(per_second=0.01, burst=2))
    other = _key(runtime, "acme")
    body = {"tenant": "acme", "query": "invoices"}

    assert [client.post("/v1/search", json=body, headers=limited).status_code for _ in range(2)] == [200, 200]
    response = client.post("/v1/search", json=body, headers=limited)

    _problem(response, 429)
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 100  # one token takes 100 s at 0.01/s
    assert client.post("/v1/search", json=body, headers=other).status_code == 200


def test_search_logs_never_hold_the_raw_query_or_a_key(
    client: TestClient, runtime: EmbeddedHeadwater, caplog: pytest.LogCaptureFixture
) -> None:
    headers = _key(runtime, "acme")
    token = headers["Authorization"].removeprefix("Bearer ")
    canaries = ["jane.canary@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"]
    query = f"refund for {canaries[0]}, phone {canaries[1]}, card {canaries[2]}"

    with caplog.at_level(logging.DEBUG):
        assert (
            client.post("/v1/search", json={"tenant": "acme", "query": query}, headers=headers).status_code
            == 200
        )
        client.post("/v1/search", json={"tenant": "globex", "query": query}, headers=headers)  # 403
        bogus = {"Authorization": f"Bearer {token[:-4]}XXXX"}
        client.post("/v1/search", json={"tenant": "acme", "query": query}, headers=bogus)  # 401

    logged = caplog.text
    key_id, secret = token.split("_", 2)[1:]
    assert f"search key={key_id} tenant=acme mode=hybrid hits=0" in logged
    assert "status=403" in logged and "status=401" in logged
    for leak in [*canaries, "example.com", "7946", secret, secret[:-4]]:
        assert leak not in logged


def test_without_access_control_the_body_is_trusted(runtime: EmbeddedHeadwater) -> None:
    client = TestClient(create_app(runtime, access=AccessSettings(auth="disabled")))
    _ingest(
        client,
        runtime,
        {"tenant": "acme", "document_id": "a", "text": "Invoices are due in 30 days.", "acl": ["finance"]},
        {"tenant": "globex", "document_id": "g", "text": "Invoices are due in 60 days."},
    )

    assert _ids(client, {}, tenant="acme") == {"a"}  # no `acl`: no ACL restriction
    assert _ids(client, {}, tenant="acme", acl=["hr"]) == set()
    assert _ids(client, {}, tenant="globex") == {"g"}


def test_bad_requests_get_problem_json(client: TestClient) -> None:
    body = _problem(client.post("/v1/documents", json={"tenant": "acme", "document_id": "d"}), 422)
    assert "errors" in body
    _problem(
        client.post(
            "/v1/documents",
            json={"tenant": "acme", "document_id": "d", "text": "x", "content_type": "application/zip"},
        ),
        415,
    )
    _problem(client.post("/v1/documents", json={"tenant": "acme", "document_id": "d", "text": "  "}), 422)
    _problem(
        client.post("/v1/documents", json={"tenant": "acme", "document_id": "d", "data_base64": "%%%"}), 400
    )
    _problem(
        client.post("/v1/documents", content=b"{not json", headers={"content-type": "application/json"}), 422
    )


def test_oversize_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    big = base64.b64encode(b"x" * 100_000).decode()
    _problem(
        client.post("/v1/documents", json={"tenant": "acme", "document_id": "big", "data_base64": big}), 413
    )


def test_validation_errors_do_not_echo_submitted_values(client: TestClient) -> None:
    response = client.post("/v1/documents", json={"tenant": "acme", "document_id": "d", "text": 12345678})
    assert "12345678" not in response.text
