"""Retrieval features over HTTP on the embedded runtime: the knowledge graph as a third list, the entity
neighbourhood endpoint (the API key's tenant only), explain, grouping and pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from headwater.runtime.embedded.http_app import create_app
from services.query.access import issue_key
from services.query.adapters.keys_postgres import PostgresKeyStore
from tests.e2e.conftest import RuntimeFactory

DOCUMENTS = [
    ("deal", "Microsoft acquired GitHub in 2018 for 7.5 billion dollars."),
    ("code", "GitHub hosts the source code of many open projects."),
    ("code-2", "GitHub Actions runs the tests of many projects. GitHub is popular."),
    ("food", "Bananas are rich in potassium."),
]


def test_graph_entities_explain_groups_and_pages_over_http(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    client = TestClient(create_app(runtime))
    store = PostgresKeyStore(runtime.parts.connect)
    store.ensure_schema()
    headers: dict[str, dict[str, str]] = {}
    for tenant in ("acme", "globex"):
        key, token = issue_key(tenant=tenant, now=datetime.now(UTC))
        store.add(key)
        headers[tenant] = {"Authorization": f"Bearer {token}"}
    store.close()
    for document_id, text in DOCUMENTS:
        body = {"tenant": "acme", "document_id": document_id, "text": text}
        assert client.post("/v1/documents", json=body).status_code == 202
    globex = {"tenant": "globex", "document_id": "g", "text": "Oracle bought Sun Microsystems."}
    assert client.post("/v1/documents", json=globex).status_code == 202
    assert runtime.wait_idle(timeout=120)

    neighbourhood = client.get("/v1/entities/org:microsoft", headers=headers["acme"])
    assert neighbourhood.status_code == 200, neighbourhood.text
    assert {n["entity_id"] for n in neighbourhood.json()["nodes"]} >= {"org:microsoft", "org:github"}
    assert client.get("/v1/entities/org:microsoft", headers=headers["globex"]).status_code == 404
    forbidden = client.get("/v1/entities/org:oracle", params={"tenant": "globex"}, headers=headers["acme"])
    assert forbidden.status_code == 403
    assert client.get("/v1/entities/org:microsoft").status_code == 401

    def search(**body: Any) -> dict[str, Any]:
        response = client.post(
            "/v1/search", json={"tenant": "acme", "query": "Microsoft", **body}, headers=headers["acme"]
        )
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    sparse = search(mode="sparse")
    assert {h["document_id"] for h in sparse["hits"]} == {"deal"}
    graph = search(mode="sparse", graph=True, explain=True)
    assert graph["entities"] == ["org:microsoft"]
    found = {h["document_id"]: h for h in graph["hits"]}
    assert {"deal", "code", "code-2"} <= set(found)  # GitHub's chunks, one hop from Microsoft
    assert "food" not in found
    assert set(found["code"]["explain"]) == {"graph"} and found["code"]["explain"]["graph"]["rank"] >= 1

    first = search(graph=True, group_by="document", top_k=2)
    assert len(first["hits"]) == 2 and first["next_offset"] == 2
    assert all(h["chunks"] and h["explain"] is None for h in first["hits"])
    rest = search(graph=True, group_by="document", top_k=2, offset=2)
    assert not {h["document_id"] for h in rest["hits"]} & {h["document_id"] for h in first["hits"]}
    refused = client.post(
        "/v1/search", json={"tenant": "acme", "query": "x", "rerank": True}, headers=headers["acme"]
    )
    assert refused.status_code == 400 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
