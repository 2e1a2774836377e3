"""`index` in a search request: only a collection the server allows (a live one of its alias), searched
with a query embedded by that collection's model; the page names the collection that answered."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headwater.kernel.problems import install_problem_handlers
from schemas import SearchMode, SearchRequest
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.adapters.fake import HashingBackend
from services.embedder.reembed import CountingBackend, Reembedder
from services.indexer.ports import CollectionSpec
from services.indexer.service import index_event
from services.query.config import AccessSettings
from services.query.errors import QueryError, UnknownIndex
from services.query.routes import install_access
from services.query.routes import router as search_router
from services.query.service import QueryService
from tests.unit.query.corpus import ALIAS, COLLECTION, World

OTHER = "chunks_v2"  # the other side of a migration: another model, another dimension
RETIRED = "chunks_v0"
ONLY_IN_OTHER = "fresh"  # a document the other side holds and the alias's does not


class Models:
    """What the runtime's CollectionModels answers: an embedder per collection, and which are allowed."""

    def __init__(self, world: World) -> None:
        self.by_collection: dict[str, HashingBackend] = {
            COLLECTION: world.backend,
            OTHER: HashingBackend(dimension=32, model_id="hash-32"),
        }
        self.asked: list[str] = []

    def embed_for(self, name: str) -> Callable[[str], list[float]]:
        self.asked.append(name)
        backend = self.by_collection[name]
        return lambda text: [float(x) for x in backend.embed([text])[0]]

    def index_allowed(self, name: str) -> bool:
        return name in self.by_collection


@pytest.fixture
def world() -> World:
    """The alias's collection (64 dims) and, beside it, the same documents and one more at 32 dims."""
    world = World()
    texts = {
        "r1": ["Quarterly revenue grew in the northern region."],
        "r2": ["Staff tables and office counts for the year."],
        "r3": ["Revenue fell in the southern region this quarter."],
    }
    events = [world.add(doc, chunks) for doc, chunks in texts.items()]
    world.index.ensure_collection(CollectionSpec(name=OTHER, dense_dim=32))
    world.index.ensure_collection(CollectionSpec(name=RETIRED, dense_dim=16))
    reembed = Reembedder(
        backend=CountingBackend(HashingBackend(dimension=32, model_id="hash-32")),
        cache=InMemoryEmbeddingCache(),
    )
    fresh = world.add(ONLY_IN_OTHER, ["Quarterly revenue report for the new region."])
    world.index.delete_points(
        COLLECTION, [h.id for h in world.index.document_points(COLLECTION, "acme", ONLY_IN_OTHER)]
    )
    for event in reembed([*events, fresh]):
        index_event(event, index=world.index, collection=OTHER)
    return world


def _service(world: World, models: Models | None) -> QueryService:
    service = world.service(graph=False)
    if models is not None:
        service.embed_for = models.embed_for
        service.index_allowed = models.index_allowed
    return service


def _request(**kw: object) -> SearchRequest:
    return SearchRequest.model_validate({"query": "quarterly revenue region", "tenant": "acme", **kw})


def test_a_server_without_a_list_of_collections_refuses_any_index(world: World) -> None:
    service = _service(world, None)
    with pytest.raises(UnknownIndex) as refused:
        service.search(_request(index=COLLECTION))  # even the alias's own collection
    assert refused.value.status == 404
    assert COLLECTION in str(refused.value) and ALIAS in str(refused.value)


@pytest.mark.parametrize("name", [RETIRED, "nowhere", ALIAS])
def test_a_collection_not_allowed_is_unknown(world: World, name: str) -> None:
    models = Models(world)
    with pytest.raises(UnknownIndex, match=name):
        _service(world, models).search(_request(index=name))
    assert models.asked == []  # refused before any embedding


@pytest.mark.parametrize("mode", [SearchMode.HYBRID, SearchMode.DENSE, SearchMode.SPARSE])
def test_an_allowed_collection_is_searched_with_its_own_model(world: World, mode: SearchMode) -> None:
    models = Models(world)
    page = _service(world, models).search(_request(index=OTHER, mode=mode))
    assert page.index == OTHER
    assert models.asked == [OTHER]
    found = {h.document_id for h in page.hits}
    assert ONLY_IN_OTHER in found  # it came from the other collection: the alias's does not hold it


def test_without_index_the_alias_answers_with_its_model(world: World) -> None:
    models = Models(world)
    page = _service(world, models).search(_request(mode=SearchMode.DENSE))
    assert page.index == COLLECTION
    assert models.asked == [COLLECTION]
    assert ONLY_IN_OTHER not in {h.document_id for h in page.hits}
    assert {h.document_id for h in page.hits} == {"r1", "r2", "r3"}


def test_the_page_names_the_collection_even_without_embed_for(world: World) -> None:
    page = _service(world, None).search(_request())
    assert page.index == COLLECTION


def test_the_http_route_answers_404_for_an_unknown_index(world: World) -> None:
    app = FastAPI()
    app.state.query_service = _service(world, Models(world))
    install_problem_handlers(app, domain_errors=(QueryError,))
    install_access(app, settings=AccessSettings(auth="disabled"), environment="test")
    app.include_router(search_router)
    client = TestClient(app)
    body = {"query": "quarterly revenue", "tenant": "acme"}
    refused = client.post("/v1/search", json={**body, "index": RETIRED})
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["title"] == "Unknown index"
    answered = client.post("/v1/search", json={**body, "index": OTHER})
    assert answered.status_code == 200, answered.text
    assert answered.json()["index"] == OTHER
