"""Behaviour every GraphStore must show, driven through the service; run on the fake and on Postgres."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas import ChangeOp, Chunk
from services.graph_builder.domain import CO_SENTENCE
from services.graph_builder.graph import expand_entities, neighbourhood
from services.graph_builder.ports import GraphStore
from services.graph_builder.service import build_graph_for
from tests.builders import chunk, chunks_embedded

ORG = "ORG"


def _apply(store: GraphStore, *chunks: Chunk, **fields: Any) -> None:
    build_graph_for(chunks_embedded(*chunks, **fields), recognizer=None, store=store)


def _chunk_ids(store: GraphStore, entity_id: str, tenant: str = "acme") -> set[tuple[str, str]]:
    return {
        (c.document_id, c.chunk_id)
        for c in store.chunks_for_entities(tenant=tenant, entity_ids=[entity_id], limit=100)
    }


def update_replaces_the_documents_old_support(store: GraphStore) -> None:
    _apply(store, chunk("d1-c1", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), version=1)
    _apply(store, chunk("d1-c9", "Acme met Gamma.", {"Acme": ORG, "Gamma": ORG}), version=2)

    assert _chunk_ids(store, "org:acme") == {("doc-1", "d1-c9")}
    assert store.entity(tenant="acme", entity_id="org:beta") is None  # no support left: pruned
    assert store.chunks_for_entities(tenant="acme", entity_ids=["org:beta"], limit=10) == []
    edges = store.edges_around(tenant="acme", entity_ids=["org:acme"], limit=10)
    assert {(e.src, e.dst) for e in edges} == {("org:acme", "org:gamma")}


def other_documents_keep_their_support(store: GraphStore) -> None:
    _apply(store, chunk("d1-c1", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), document_id="doc-1")
    _apply(store, chunk("d2-c1", "Acme and Beta again.", {"Acme": ORG, "Beta": ORG}), document_id="doc-2")
    _apply(store, chunk("d1-c2", "Only Gamma now.", {"Gamma": ORG}), document_id="doc-1", version=2)

    assert _chunk_ids(store, "org:acme") == {("doc-2", "d2-c1")}
    acme = store.entity(tenant="acme", entity_id="org:acme")
    assert acme is not None
    assert acme.chunk_count == 1
    edges = store.edges_around(tenant="acme", entity_ids=["org:acme"], limit=10)
    assert [(e.src, e.dst, e.relation, e.weight) for e in edges] == [
        ("org:acme", "org:beta", CO_SENTENCE, 1.0)
    ]


def delete_removes_support_and_prunes(store: GraphStore) -> None:
    _apply(store, chunk("d1-c1", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), document_id="doc-1")
    _apply(store, chunk("d2-c1", "Beta alone.", {"Beta": ORG}), document_id="doc-2")

    _apply(store, op=ChangeOp.DELETE, document_id="doc-1", version=5)

    assert store.entity(tenant="acme", entity_id="org:acme") is None
    assert _chunk_ids(store, "org:beta") == {("doc-2", "d2-c1")}
    assert store.edges_around(tenant="acme", entity_ids=["org:beta"], limit=10) == []


def older_or_equal_version_is_ignored(store: GraphStore) -> None:
    _apply(store, chunk("v5", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), version=5)
    _apply(store, chunk("v3", "Gamma met Delta.", {"Gamma": ORG, "Delta": ORG}), version=3)
    _apply(store, chunk("v5-again", "Epsilon.", {"Epsilon": ORG}), version=5)

    assert _chunk_ids(store, "org:acme") == {("doc-1", "v5")}
    assert store.find_entities(tenant="acme", names_or_ids=["Gamma", "Epsilon"]) == []


def replayed_upsert_after_delete_stays_deleted(store: GraphStore) -> None:
    _apply(store, chunk("c1", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), version=1)
    _apply(store, op=ChangeOp.DELETE, version=2)
    _apply(
        store, chunk("c1", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), version=1
    )  # replay of the old event

    assert store.entity(tenant="acme", entity_id="org:acme") is None
    _apply(store, chunk("c2", "Acme is back.", {"Acme": ORG}), version=3)  # a newer upsert revives it
    assert _chunk_ids(store, "org:acme") == {("doc-1", "c2")}


def tenants_are_isolated(store: GraphStore) -> None:
    _apply(store, chunk("a-c1", "Acme met Beta.", {"Acme": ORG, "Beta": ORG}), tenant="acme")
    _apply(store, chunk("b-c1", "Acme met Gamma.", {"Acme": ORG, "Gamma": ORG}), tenant="beta")

    assert _chunk_ids(store, "org:acme", tenant="acme") == {("doc-1", "a-c1")}
    assert _chunk_ids(store, "org:acme", tenant="beta") == {("doc-1", "b-c1")}
    assert store.entity(tenant="acme", entity_id="org:gamma") is None
    assert [e.dst for e in store.edges_around(tenant="beta", entity_ids=["org:acme"], limit=10)] == [
        "org:gamma"
    ]
    assert [r.entity_id for r in store.find_entities(tenant="acme", names_or_ids=["gamma", "beta"])] == [
        "org:beta"
    ]

    _apply(store, op=ChangeOp.DELETE, tenant="beta", version=2)
    assert store.entity(tenant="beta", entity_id="org:acme") is None
    assert store.entity(tenant="acme", entity_id="org:acme") is not None


def edges_sum_across_documents_and_fanout_is_bounded(store: GraphStore) -> None:
    # Hub co-occurs with N1 in three documents, N2 in two, N3 in one.
    for doc, partners in {"d1": "N1 N2 N3", "d2": "N1 N2", "d3": "N1"}.items():
        text = "Hub meets " + " and ".join(partners.split()) + "."
        ents = {"Hub": ORG} | dict.fromkeys(partners.split(), ORG)
        _apply(store, chunk(f"{doc}-c1", text, ents), document_id=doc)

    edges = store.edges_around(tenant="acme", entity_ids=["org:hub"], limit=2)
    hub_edges = {(e.dst, e.weight) for e in edges if e.relation == CO_SENTENCE}
    assert hub_edges == {("org:n1", 3.0), ("org:n2", 2.0)}
    strong = store.edges_around(tenant="acme", entity_ids=["org:hub"], limit=10, min_weight=2.5)
    assert {e.dst for e in strong} == {"org:n1"}


def find_entities_by_name_or_id(store: GraphStore) -> None:
    _apply(store, chunk("c1", "The Acme Corp. signed with Berlin.", {"The Acme Corp.": ORG, "Berlin": "GPE"}))

    assert [r.entity_id for r in store.find_entities(tenant="acme", names_or_ids=["acme inc"])] == [
        "org:acme"
    ]
    assert [r.entity_id for r in store.find_entities(tenant="acme", names_or_ids=["place:berlin"])] == [
        "place:berlin"
    ]
    assert store.find_entities(tenant="acme", names_or_ids=["org:berlin"]) == []
    records = store.entities(tenant="acme", entity_ids=["org:acme", "org:nope"])
    assert [(r.entity_id, r.name, r.label, r.chunk_count) for r in records] == [
        ("org:acme", "Acme Corp.", "org", 1)
    ]


def neighbourhood_hops_and_fanout(store: GraphStore) -> None:
    # A star: Root — A (weight 3), B (2), C (1); A — A1 (2), A2 (1); B — B1 (1).
    pairs = {"Root A": 3, "Root B": 2, "Root C": 1, "A A1": 2, "A A2": 1, "B B1": 1}
    n = 0
    for pair, times in pairs.items():
        left, right = pair.split()
        for _ in range(times):
            n += 1
            _apply(
                store, chunk(f"c{n}", f"{left} with {right}.", {left: ORG, right: ORG}), document_id=f"d{n}"
            )

    one = neighbourhood(store, "acme", "org:root", hops=1, fanout=2)
    assert [(x.entity_id, x.hop) for x in one.nodes] == [("org:root", 0), ("org:a", 1), ("org:b", 1)]
    assert [(e.src, e.dst, e.weight) for e in one.edges] == [
        ("org:a", "org:root", 3.0),
        ("org:b", "org:root", 2.0),
    ]

    two = neighbourhood(store, "acme", "org:root", hops=2, fanout=2)
    # A keeps its two heaviest edges (Root, A1), so A2 stays out; C was cut at the first hop.
    assert {(x.entity_id, x.hop) for x in two.nodes} == {
        ("org:root", 0),
        ("org:a", 1),
        ("org:b", 1),
        ("org:a1", 2),
        ("org:b1", 2),
    }
    assert {(e.src, e.dst): e.weight for e in two.edges} == {
        ("org:a", "org:root"): 3.0,
        ("org:b", "org:root"): 2.0,
        ("org:a", "org:a1"): 2.0,
        ("org:b", "org:b1"): 1.0,
    }
    # The edge back to the parent counts towards a node's fan-out: with one, A brings nothing new.
    narrow = neighbourhood(store, "acme", "org:root", hops=2, fanout=1)
    assert [x.entity_id for x in narrow.nodes] == ["org:root", "org:a"]
    assert two.model_dump()["root"] == "org:root"  # plain data, ready to serialise

    scores = dict(expand_entities(store, "acme", ["org:root"], hops=2, fanout=3, decay=0.5))
    assert scores["org:root"] == 1.0
    assert scores["org:a"] == pytest.approx(0.5)
    assert scores["org:b"] == pytest.approx(0.5 * 2 / 3)
    assert scores["org:a1"] == pytest.approx(
        0.5 * 0.5 * 2 / 3
    )  # A's score × decay × 2 / A's heaviest (Root, 3)
    assert scores["org:a"] > scores["org:b"] > scores["org:c"]


SCENARIOS: list[Callable[[GraphStore], None]] = [
    update_replaces_the_documents_old_support,
    other_documents_keep_their_support,
    delete_removes_support_and_prunes,
    older_or_equal_version_is_ignored,
    replayed_upsert_after_delete_stays_deleted,
    tenants_are_isolated,
    edges_sum_across_documents_and_fanout_is_bounded,
    find_entities_by_name_or_id,
    neighbourhood_hops_and_fanout,
]
