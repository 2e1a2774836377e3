"""Query entity linking and the ranking of the graph's chunks, over the in-memory graph store."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from schemas import ChunkMention
from services.graph_builder.domain import ChunkSupport
from services.indexer.logic import point_id
from services.query.graph_retrieval import (
    GazetteerLinker,
    GraphRetriever,
    NerLinker,
    chunk_point_ids,
    query_phrases,
    score_chunks,
    specificity,
)
from tests.unit.query.corpus import World

ORG, GPE = "ORG", "GPE"


def test_query_phrases_are_ngrams_without_stopword_edges() -> None:
    phrases = query_phrases("Does the IL-6 receptor bind to NF-kB in 2020?", max_words=3)
    assert "IL-6" in phrases and "IL-6 receptor" in phrases and "NF-kB" in phrases
    assert "receptor bind" in phrases
    assert not any(p.split()[0].lower() in {"does", "the", "to", "in"} for p in phrases)
    assert not any(p.split()[-1].lower() in {"does", "the", "to", "in"} for p in phrases)
    assert "2020" not in phrases  # a bare number names nothing
    assert query_phrases("of the and") == []


@pytest.fixture
def world() -> World:
    world = World()
    world.add("d1", [("Acme Corp. opened an office in New York.", {"Acme Corp.": ORG, "New York": GPE})])
    world.add("d2", [("The New York office hired staff.", {"New York": GPE})])
    world.add("d3", [("Acme shipped the order.", {"Acme": ORG})])
    world.add("other", [("Initech moved to New York.", {"Initech": ORG, "New York": GPE})], tenant="globex")
    return world


def test_gazetteer_matches_names_as_the_graph_normalised_them(world: World) -> None:
    linker = GazetteerLinker()
    found = linker.link(world.graph_store, "acme", "where did acme corp open offices in new york?")
    assert {e.entity_id for e in found} == {"org:acme", "place:new-york"}
    assert linker.link(world.graph_store, "acme", "Initech") == []  # globex's entity, not acme's
    assert [e.entity_id for e in linker.link(world.graph_store, "globex", "Initech")] == ["org:initech"]


class _Recognizer:
    """Recognises the given surface forms wherever they occur (an NER stand-in for the linker test)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def recognize_batch(self, texts: Sequence[str]) -> list[list[ChunkMention]]:
        return [
            [
                ChunkMention(label=label, text=name, start=t.index(name), end=t.index(name) + len(name))
                for name, label in self.names.items()
                if name in t
            ]
            for t in texts
        ]


def test_ner_linker_looks_up_only_what_the_recogniser_found(world: World) -> None:
    linker = NerLinker(_Recognizer({"New York": GPE, "2020": "DATE"}))
    found = linker.link(world.graph_store, "acme", "Acme in New York in 2020")
    assert [e.entity_id for e in found] == ["place:new-york"]  # DATE is not an entity; Acme not recognised


def test_specificity_favours_rare_entities() -> None:
    assert specificity(0) == 1.0
    assert specificity(1) > specificity(10) > specificity(1000) > 0


def test_chunks_rank_by_the_summed_weight_of_their_entities() -> None:
    supports = [
        ChunkSupport(chunk_id="c1", document_id="d1", entity_ids=("a",), mentions=5),
        ChunkSupport(chunk_id="c2", document_id="d2", entity_ids=("a", "b"), mentions=2),
        ChunkSupport(chunk_id="c3", document_id="d3", entity_ids=("b",), mentions=1),
        ChunkSupport(chunk_id="c4", document_id="d4", entity_ids=("a",), mentions=1),
        ChunkSupport(chunk_id="c5", document_id="d5", entity_ids=("z",), mentions=9),
    ]
    ranked = score_chunks(supports, {"a": 1.0, "b": 0.5}, limit=10)
    assert [c for _, c, _ in ranked] == ["c2", "c1", "c4", "c3"]  # c5 reached nothing: dropped
    assert ranked[0][2] == 1.5
    assert [c for _, c, _ in score_chunks(supports, {"a": 1.0, "b": 0.5}, limit=2)] == ["c2", "c1"]


def test_retriever_returns_seeds_and_scored_chunks(world: World) -> None:
    retriever = GraphRetriever(store=world.graph_store, linker=GazetteerLinker())
    found = retriever.retrieve("acme", "Acme Corp.", hops=1, limit=10)
    assert [e.entity_id for e in found.entities] == ["org:acme"]
    by_document = {doc: score for doc, _, score in found.chunks}
    # d1 names Acme; d2 names its neighbour New York; d3's "Acme" normalises to the same entity.
    assert set(by_document) == {"d1", "d2", "d3"}
    assert by_document["d1"] > by_document["d2"]
    assert retriever.retrieve("acme", "nothing known here", hops=2, limit=10).chunks == []
    ids = chunk_point_ids("acme", found.chunks)
    assert next(iter(ids)) == point_id(
        tenant="acme", document_id=found.chunks[0][0], chunk_id=found.chunks[0][1]
    )


def test_fanout_is_bounded() -> None:
    with pytest.raises(ValueError, match="fanout"):
        GraphRetriever(store=World().graph_store, linker=GazetteerLinker(), fanout=0)
