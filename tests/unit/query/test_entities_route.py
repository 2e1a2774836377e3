"""`GET /v1/entities/{id}`: a neighbourhood from the caller's tenant only; problem+json otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headwater.kernel.problems import install_problem_handlers
from services.query.access import issue_key
from services.query.adapters.keys_memory import InMemoryKeyStore
from services.query.config import AccessSettings
from services.query.entities_routes import router as entities_router
from services.query.errors import QueryError
from services.query.routes import install_access
from tests.unit.query.corpus import World

ORG = "ORG"


def _world() -> World:
    world = World()
    world.add("d1", [("Acme acquired Beta.", {"Acme": ORG, "Beta": ORG})])
    world.add("d2", [("Beta supplies Delta.", {"Beta": ORG, "Delta": ORG})])
    world.add("g1", [("Acme sued Initech.", {"Acme": ORG, "Initech": ORG})], tenant="globex")
    return world


def _app(world: World, *, auth: str, keys: InMemoryKeyStore | None = None, graph: bool = True) -> TestClient:
    app = FastAPI()
    app.state.query_service = world.service(graph=graph)
    install_problem_handlers(app, domain_errors=(QueryError,))
    install_access(app, settings=AccessSettings(auth=auth), environment="test", keys=keys)
    app.include_router(entities_router)
    return TestClient(app)


def _problem(response: object, status: int) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]


def test_neighbourhood_of_an_entity_without_access_control() -> None:
    client = _app(_world(), auth="disabled")
    one = client.get("/v1/entities/org:acme", params={"tenant": "acme"}).json()
    assert one["root"] == "org:acme"
    assert [(n["entity_id"], n["hop"]) for n in one["nodes"]] == [("org:acme", 0), ("org:beta", 1)]
    two = client.get("/v1/entities/org:acme", params={"tenant": "acme", "hops": 2}).json()
    assert {n["entity_id"] for n in two["nodes"]} == {"org:acme", "org:beta", "org:delta"}
    globex = client.get("/v1/entities/org:acme", params={"tenant": "globex"}).json()
    assert {n["entity_id"] for n in globex["nodes"]} == {"org:acme", "org:initech"}


def test_bad_requests_are_problems() -> None:
    client = _app(_world(), auth="disabled")
    _problem(client.get("/v1/entities/org:initech", params={"tenant": "acme"}), 404)  # globex's only
    _problem(client.get("/v1/entities/org:acme"), 422)  # no key and no tenant
    _problem(client.get("/v1/entities/org:acme", params={"tenant": "acme", "hops": 3}), 422)
    _problem(client.get("/v1/entities/org:acme", params={"tenant": "acme", "fanout": 0}), 422)
    _problem(client.get("/v1/entities/org:acme", params={"tenant": "bad tenant!"}), 422)
    _problem(
        _app(_world(), auth="disabled", graph=False).get("/v1/entities/x", params={"tenant": "acme"}), 400
    )


@pytest.fixture
def keys() -> InMemoryKeyStore:
    return InMemoryKeyStore()


def test_with_access_control_the_key_decides_the_tenant(keys: InMemoryKeyStore) -> None:
    key, token = issue_key(tenant="acme", now=datetime(2025, 1, 1, tzinfo=UTC))
    keys.add(key)
    client = _app(_world(), auth="required", keys=keys)
    _problem(client.get("/v1/entities/org:acme"), 401)
    headers = {"Authorization": f"Bearer {token}"}
    mine = client.get("/v1/entities/org:acme", headers=headers)
    assert {n["entity_id"] for n in mine.json()["nodes"]} == {"org:acme", "org:beta"}
    _problem(client.get("/v1/entities/org:acme", params={"tenant": "globex"}, headers=headers), 403)
    _problem(client.get("/v1/entities/org:initech", headers=headers), 404)  # exists only in globex
