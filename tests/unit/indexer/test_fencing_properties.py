"""Property: any delivery order of a document's events, with duplicates, shows what the newest one shows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ChangeOp, ChunksEnriched
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.logic import plan_write
from services.indexer.ports import CollectionSpec, IndexFilter
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event

COLLECTION = "chunks"
WORDS = ["alpha", "beta", "gamma", "delta", "eps"]


def _visible(index: InMemoryIndex) -> list[tuple[str, object, object]]:
    hits = index.scroll(COLLECTION, filter=IndexFilter(tenant="acme"), limit=1000)
    return sorted((h.id, h.payload["doc_version"], h.payload["text"]) for h in hits)


def _fresh() -> InMemoryIndex:
    index = InMemoryIndex()
    index.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=DIM))
    return index


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[ChunksEnriched], list[int], list[int]]:
    """Events with distinct versions, a delivery order with duplicates, and crash points (partial writes)."""
    versions = draw(st.lists(st.integers(0, 50), min_size=1, max_size=6, unique=True))
    events = []
    for v in versions:
        if draw(st.booleans()) and draw(st.booleans()):
            events.append(make_event(version=v, op=ChangeOp.DELETE))
        else:
            texts = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=4, unique=True))
            events.append(make_event(version=v, texts=texts))
    order = draw(st.lists(st.integers(0, len(events) - 1), min_size=len(events), max_size=3 * len(events)))
    order += list(range(len(events)))  # every event is delivered at least once
    order = draw(st.permutations(order))
    crashes = draw(st.lists(st.integers(0, len(order) - 1), max_size=3))
    return events, order, crashes


@settings(max_examples=200, deadline=None)
@given(deliveries())
def test_any_order_with_duplicates_and_crashes_converges_on_the_newest_version(
    case: tuple[list[ChunksEnriched], list[int], list[int]],
) -> None:
    events, order, crashes = case
    index = _fresh()
    for step, i in enumerate(order):
        event = events[i]
        if step in crashes:
            # A crash after the upserts, before the soft-deletes; redelivery follows (at-least-once).
            plan = plan_write(event, index.document_points(COLLECTION, "acme", "doc-1"), NOW)
            index.upsert(COLLECTION, plan.upserts)
        index_event(event, index=index, collection=COLLECTION, now=NOW)
    expected = _fresh()
    index_event(max(events, key=lambda e: e.version), index=expected, collection=COLLECTION, now=NOW)
    assert _visible(index) == _visible(expected)
