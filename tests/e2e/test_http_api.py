"""The HTTP surface of the embedded runtime: 202 on durable accept, problem+json on bad input."""

from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient

from headwater.runtime.http_app import create_app
from tests.e2e.conftest import RuntimeFactory


@pytest.fixture
def client(make_runtime: RuntimeFactory) -> TestClient:
    runtime = make_runtime()
    return TestClient(create_app(runtime, max_body_bytes=64 * 1024))


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status and body["title"]
    return body


def test_accept_then_search_over_http(client: TestClient) -> None:
    response = client.post(
        "/v1/documents", json={"tenant": "acme", "document_id": "d1", "text": "Invoices are due in 30 days."}
    )
    assert response.status_code == 202
    assert response.json()["document_id"] == "d1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hits = client.post("/v1/search", json={"tenant": "acme", "query": "invoices due"}).json()["hits"]
        if hits:
            break
        time.sleep(0.1)
    assert hits[0]["document_id"] == "d1" and "sparse" in hits[0]["retrievers"]


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "/v1/search" in client.get("/openapi.json").json()["paths"]


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
    _problem(client.post("/v1/search", json={"tenant": "acme", "query": "x", "top_k": 10_000}), 422)
    _problem(client.post("/v1/search", json={"query": "no tenant"}), 422)


def test_oversize_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    big = base64.b64encode(b"x" * 100_000).decode()
    _problem(
        client.post("/v1/documents", json={"tenant": "acme", "document_id": "big", "data_base64": big}), 413
    )


def test_validation_errors_do_not_echo_submitted_values(client: TestClient) -> None:
    response = client.post("/v1/documents", json={"tenant": "acme", "document_id": "d", "text": 12345678})
    assert "12345678" not in response.text
