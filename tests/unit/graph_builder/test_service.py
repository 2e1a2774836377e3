"""The use case on the in-memory store: upstream mentions or the recognizer, version fences, deletes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from schemas import ChangeOp, ChunkMention
from services.graph_builder.adapters.memory import MemoryGraphStore
from services.graph_builder.errors import InvalidTraversal, RecognizerRequired, UnknownEntity
from services.graph_builder.graph import expand_entities, neighbourhood
from services.graph_builder.service import build_graph_for
from tests.builders import chunk, chunks_embedded, mentions_of


class FakeRecognizer:
    """Finds the configured surface forms and records every batch it is given."""

    def __init__(self, entities: dict[str, str]) -> None:
        self.entities = entities
        self.batches: list[list[str]] = []

    def recognize_batch(self, texts: Sequence[str]) -> list[list[ChunkMention]]:
        self.batches.append(list(texts))
        return [mentions_of(t, self.entities) for t in texts]


def test_recognizer_runs_once_only_on_chunks_without_upstream_mentions() -> None:
    store, ner = MemoryGraphStore(), FakeRecognizer({"Beta": "ORG", "Acme": "ORG"})
    event = chunks_embedded(
        chunk("c1", "Acme met Beta.", {"Acme": "ORG"}),  # upstream saw only Acme: it is trusted as is
        chunk("c2", "Beta grew."),
        chunk("c3", "Acme shrank."),
    )

    enriched = build_graph_for(event, recognizer=ner, store=store)

    assert ner.batches == [["Beta grew.", "Acme shrank."]]
    assert [(e.chunk_id, e.entity_ids) for e in enriched.entities] == [
        ("c1", ["org:acme"]),
        ("c2", ["org:beta"]),
        ("c3", ["org:acme"]),
    ]
    assert {r.entity_id for r in store.find_entities(tenant="acme", names_or_ids=["acme", "beta"])} == {
        "org:acme",
        "org:beta",
    }


def test_chunks_without_mentions_need_a_recognizer() -> None:
    with pytest.raises(RecognizerRequired):
        build_graph_for(chunks_embedded(chunk("c1", "Acme.")), recognizer=None, store=MemoryGraphStore())


def test_upstream_mentions_alone_need_no_recognizer() -> None:
    enriched = build_graph_for(
        chunks_embedded(chunk("c1", "Acme.", {"Acme": "ORG"})), recognizer=None, store=MemoryGraphStore()
    )
    assert enriched.entities[0].entity_ids == ["org:acme"]


def test_a_stale_version_leaves_the_store_but_is_still_enriched() -> None:
    store = MemoryGraphStore()
    build_graph_for(
        chunks_embedded(chunk("new", "Acme.", {"Acme": "ORG"}), version=9), recognizer=None, store=store
    )

    stale = build_graph_for(
        chunks_embedded(chunk("old", "Beta.", {"Beta": "ORG"}), version=4), recognizer=None, store=store
    )

    assert stale.entities[0].entity_ids == ["org:beta"]
    assert store.entity(tenant="acme", entity_id="org:beta") is None
    assert store.document_version(tenant="acme", document_id="doc-1") == 9


def test_delete_is_enriched_with_nothing_and_leaves_a_tombstone() -> None:
    store = MemoryGraphStore()
    build_graph_for(
        chunks_embedded(chunk("c1", "Acme.", {"Acme": "ORG"}), version=1), recognizer=None, store=store
    )

    enriched = build_graph_for(chunks_embedded(op=ChangeOp.DELETE, version=2), recognizer=None, store=store)

    assert (enriched.op, enriched.chunks, enriched.entities) == ("delete", [], [])
    assert store.entity(tenant="acme", entity_id="org:acme") is None
    assert store.document_version(tenant="acme", document_id="doc-1") == 2


def test_traversal_refuses_unknown_entities_and_unbounded_requests() -> None:
    store = MemoryGraphStore()
    build_graph_for(
        chunks_embedded(chunk("c1", "Acme met Beta.", {"Acme": "ORG", "Beta": "ORG"})),
        recognizer=None,
        store=store,
    )

    with pytest.raises(UnknownEntity):
        neighbourhood(store, "acme", "org:nope")
    with pytest.raises(UnknownEntity):
        neighbourhood(store, "other-tenant", "org:acme")
    with pytest.raises(InvalidTraversal):
        neighbourhood(store, "acme", "org:acme", hops=3)
    with pytest.raises(InvalidTraversal):
        expand_entities(store, "acme", ["org:acme"], fanout=0)
