"""The query service over the in-memory index and graph: pages, explain, grouping, reranking, filters and
the knowledge graph as a third list that never widens what a caller may see."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from schemas import DateRangeFilter, SearchFilters, SearchHit, SearchRequest
from services.query.errors import FeatureUnavailable, RerankerUnavailable
from services.query.logic import RERANK
from tests.unit.query.corpus import World

ORG = "ORG"


def _request(query: str, **kw: Any) -> SearchRequest:
    return SearchRequest(query=query, tenant=str(kw.pop("tenant", "acme")), **kw)


def _ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.chunk_id for h in hits]


@pytest.fixture
def reports() -> World:
    """Twenty-five reports sharing the word "quarterly", each with two chunks."""
    world = World()
    for n in range(25):
        world.add(
            f"r{n:02d}",
            [
                f"Quarterly report {n}: revenue grew in region {n % 4} and costs fell.",
                f"Appendix {n}: quarterly tables of staff and offices in region {n % 3}.",
            ],
            metadata={"published": f"2024-{n % 12 + 1:02d}-15"},
        )
    return world


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_pages_are_slices_of_one_ranking(reports: World, mode: str) -> None:
    service = reports.service()
    whole = service.search(_request("quarterly revenue report", mode=mode, top_k=30))
    pages: list[SearchHit] = []
    offset: int | None = 0
    while offset is not None and offset < 30:
        result = service.search(_request("quarterly revenue report", mode=mode, top_k=10, offset=offset))
        assert result.offset == offset
        pages += result.hits
        offset = result.next_offset
    assert _ids(pages) == _ids(whole.hits)
    last = service.search(_request("quarterly revenue report", mode=mode, top_k=10, offset=40))
    assert len(last.hits) == 10 and last.next_offset is None  # 50 chunks in all


def test_the_result_window_is_bounded() -> None:
    with pytest.raises(ValueError, match="offset"):
        _request("x", offset=995, top_k=10)


def test_explain_reports_each_retrievers_own_rank_and_score(reports: World) -> None:
    service = reports.service()
    plain = service.search(_request("revenue grew in region 2"))
    assert all(h.explain is None for h in plain.hits)
    explained = service.search(_request("revenue grew in region 2", explain=True))
    assert _ids(explained.hits) == _ids(plain.hits)
    dense = {
        h.chunk_id: h
        for h in service.search(_request("revenue grew in region 2", mode="dense", top_k=50)).hits
    }
    sparse = {
        h.chunk_id: h
        for h in service.search(_request("revenue grew in region 2", mode="sparse", top_k=50)).hits
    }
    for hit in explained.hits:
        assert hit.explain is not None
        assert {name: e.rank for name, e in hit.explain.items()} == hit.retrievers
        for name, single in (("dense", dense), ("sparse", sparse)):
            if name in hit.explain:
                assert hit.explain[name].rank == single[hit.chunk_id].retrievers[name]
                assert hit.explain[name].score == pytest.approx(single[hit.chunk_id].score, abs=1e-6)


def test_group_by_document_returns_each_document_once_with_its_best_chunks(reports: World) -> None:
    service = reports.service()
    chunks = service.search(_request("quarterly tables of offices", top_k=100)).hits
    grouped = service.search(
        _request("quarterly tables of offices", top_k=10, group_by="document", group_size=2)
    )
    documents = [h.document_id for h in grouped.hits]
    assert len(set(documents)) == len(documents) == 10
    assert documents == list(dict.fromkeys(h.document_id for h in chunks))[:10]
    for hit in grouped.hits:
        assert hit.chunks is not None
        assert hit.chunks[0].chunk_id == hit.chunk_id
        assert [c.chunk_id for c in hit.chunks] == [
            c.chunk_id for c in chunks if c.document_id == hit.document_id
        ][:2]
    assert grouped.next_offset == 10
    second = service.search(_request("quarterly tables of offices", top_k=10, offset=10, group_by="document"))
    assert not {h.document_id for h in second.hits} & set(documents)


def test_date_range_filter_applies_inside_the_search(reports: World) -> None:
    june = SearchFilters(
        date_range=[DateRangeFilter(key="published", gte=date(2024, 6, 1), lt=date(2024, 7, 1))]
    )
    hits = reports.service().search(_request("quarterly report", top_k=50, filters=june)).hits
    assert hits
    assert {h.metadata["published"] for h in hits} == {"2024-06-15"}


class _WordOverlap:
    """A stand-in second stage: scores a text by how many query words it contains."""

    name = "word-overlap"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        self.seen.append(len(texts))
        words = set(query.lower().split())
        return [float(len(words & set(t.lower().replace(":", " ").split()))) for t in texts]


def test_rerank_rescored_the_head_and_explains_it(reports: World) -> None:
    reranker = _WordOverlap()
    service = reports.service(reranker=reranker)
    request = _request("appendix 7 staff offices", rerank=True, rerank_depth=20, top_k=30, explain=True)
    hits = service.search(request).hits
    assert reranker.seen == [20]
    head = hits[:20]
    assert [h.score for h in head] == sorted((h.score for h in head), reverse=True)
    assert head[0].chunk_id == "r07#1"  # the only chunk holding all four words
    assert all(h.explain is not None and h.explain[RERANK].rank == i for i, h in enumerate(head, start=1))
    assert all(RERANK not in h.retrievers for h in hits[20:])


def test_stages_the_server_lacks_are_refused_clearly(reports: World) -> None:
    with pytest.raises(RerankerUnavailable):
        reports.service().search(_request("report", rerank=True))
    with pytest.raises(FeatureUnavailable):
        reports.service(graph=False).search(_request("report", graph=True))


@pytest.fixture
def companies() -> World:
    world = World()
    world.add("deal", [("Acme acquired Beta last spring.", {"Acme": ORG, "Beta": ORG})])
    world.add("rockets", [("Beta builds rockets near Austin.", {"Beta": ORG})])
    world.add("secret", [("Beta hides a second factory.", {"Beta": ORG})], acl=["board"])
    world.add("shoes", [("Gamma sells shoes.", {"Gamma": ORG})])
    world.add("chain", [("Beta supplies Delta with engines.", {"Beta": ORG, "Delta": ORG})])
    world.add("far", [("Delta flies to Lisbon.", {"Delta": ORG})])
    # Another tenant's graph ties Acme to Gamma; it must never steer acme's queries.
    world.add("rumour", [("Acme will merge with Gamma.", {"Acme": ORG, "Gamma": ORG})], tenant="globex")
    return world


def test_graph_list_brings_chunks_about_the_querys_neighbours(companies: World) -> None:
    service = companies.service()
    sparse = service.search(_request("What did Acme do", mode="sparse", top_k=20))
    assert {h.document_id for h in sparse.hits} == {"deal"}
    page = service.search(_request("What did Acme do", mode="sparse", graph=True, top_k=20, explain=True))
    assert page.entities == ["org:acme"]
    found = {h.document_id: h for h in page.hits}
    # One hop: Acme's chunk and the chunks of its neighbour Beta, which never name Acme.
    assert set(found) == {"deal", "rockets", "secret", "chain"}
    assert found["rockets"].retrievers == {"graph": found["rockets"].retrievers["graph"]}
    assert found["deal"].retrievers.keys() == {"sparse", "graph"}
    assert "shoes" not in found  # globex's Acme-Gamma edge is not acme's


def test_two_hops_reach_further_with_decaying_scores(companies: World) -> None:
    service = companies.service()
    one = service.search(_request("Acme", mode="sparse", graph=True, top_k=20, explain=True))
    two = service.search(_request("Acme", mode="sparse", graph=True, graph_hops=2, top_k=20, explain=True))
    assert "far" not in {h.document_id for h in one.hits}
    graph_scores = {
        h.document_id: h.explain["graph"].score for h in two.hits if h.explain and "graph" in h.explain
    }
    assert graph_scores["deal"] > graph_scores["rockets"] > graph_scores["far"]


def test_graph_chunks_pass_the_callers_acl_and_the_live_filter(companies: World) -> None:
    service = companies.service()
    outsider = service.search(_request("Acme", mode="sparse", graph=True, acl=["staff"], top_k=20))
    assert "secret" not in {h.document_id for h in outsider.hits}
    board = service.search(_request("Acme", mode="sparse", graph=True, acl=["board"], top_k=20))
    assert "secret" in {h.document_id for h in board.hits}
    companies.delete_from_index_only("rockets")  # the graph still names its chunk
    after = service.search(_request("Acme", mode="sparse", graph=True, top_k=20))
    assert "rockets" not in {h.document_id for h in after.hits}


def test_graph_chunks_pass_metadata_filters_too(companies: World) -> None:
    companies.add("memo", [("Beta memo about Acme.", {"Beta": ORG, "Acme": ORG})], metadata={"kind": "memo"})
    only_memos = SearchFilters.model_validate({"match": [{"key": "kind", "value": "memo"}]})
    hits = companies.service().search(_request("Acme", graph=True, filters=only_memos, top_k=20)).hits
    assert {h.document_id for h in hits} == {"memo"}


def test_graph_is_scoped_to_the_tenant(companies: World) -> None:
    globex = companies.service().search(
        _request("Acme", tenant="globex", mode="sparse", graph=True, top_k=20, explain=True)
    )
    assert {h.document_id for h in globex.hits} == {"rumour"}
    assert globex.entities == ["org:acme"]
