"""Writing changes into both collections of a migration, each in its own model: as they are where the model
matches, re-embedded where it does not, never embedding what a collection already holds."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import ChangeOp, ChunksEnriched, ChunkVectors
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.adapters.fake import HashingBackend
from services.embedder.reembed import CountingBackend, Reembedder
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.errors import ModelMismatch
from services.indexer.logic import point_id, tombstone_id
from services.indexer.migration.plan import IndexCollection
from services.indexer.migration.writer import reembed_into, write_everywhere
from services.indexer.ports import DELETED, LIVE, CollectionSpec, IndexHit
from services.indexer.service import index_event
from tests.builders import DIM, make_event, vector_for

SOURCE = IndexCollection(name="src", alias="chunks", model_id="test-model", dimension=DIM, profile=None)
TARGET = IndexCollection(name="dst", alias="chunks", model_id="hash-b", dimension=32, profile=None)


class Sides:
    """A memory index with both collections and one counting backend per model."""

    def __init__(self) -> None:
        self.index = InMemoryIndex()
        for c in (SOURCE, TARGET):
            self.index.ensure_collection(CollectionSpec(name=c.name, dense_dim=c.dimension))
        self.inner = {
            SOURCE.name: HashingBackend(dimension=SOURCE.dimension, model_id=SOURCE.model_id),
            TARGET.name: HashingBackend(dimension=TARGET.dimension, model_id=TARGET.model_id),
        }
        self.reembedders = {
            name: Reembedder(backend=CountingBackend(inner), cache=InMemoryEmbeddingCache())
            for name, inner in self.inner.items()
        }

    def reembedder_for(self, collection: IndexCollection) -> Reembedder:
        return self.reembedders[collection.name]

    def texts(self, collection: IndexCollection) -> int:
        return self.reembedders[collection.name].backend.texts

    def points(self, collection: IndexCollection) -> dict[str, IndexHit]:
        hits, cursor = self.index.scan(collection.name, after=None, limit=10_000)
        assert cursor is None
        return {h.id: h for h in hits}

    def live(self, collection: IndexCollection, document_id: str = "doc-1") -> dict[str, IndexHit]:
        return {
            pid: h
            for pid, h in self.points(collection).items()
            if h.payload["document_id"] == document_id and h.payload["state"] == LIVE
        }


def in_target_model(event: ChunksEnriched) -> ChunksEnriched:
    """The same change as the target's model would have embedded it upstream."""
    backend = HashingBackend(dimension=TARGET.dimension, model_id=TARGET.model_id)
    rows = backend.embed([c.text for c in event.chunks]) if event.chunks else np.zeros((0, 0))
    vectors = [
        ChunkVectors(chunk_id=v.chunk_id, dense=[float(x) for x in row], sparse=v.sparse)
        for v, row in zip(event.vectors, rows, strict=True)
    ]
    return event.model_copy(
        update={"model": TARGET.model_id, "dimension": TARGET.dimension, "vectors": vectors}
    )


def chunk_pid(event: ChunksEnriched, i: int = 0) -> str:
    return point_id(tenant=event.tenant, document_id=event.document_id, chunk_id=event.chunks[i].chunk_id)


def expected(backend_dim: int, model_id: str, text: str) -> list[float]:
    row = HashingBackend(dimension=backend_dim, model_id=model_id).embed([text])[0]
    return [float(x) for x in row]


def test_each_collection_gets_the_change_in_its_own_model() -> None:
    sides = Sides()
    from_source = make_event(version=1, texts=["alpha beta", "gamma delta"], document_id="doc-a")
    from_target = in_target_model(make_event(version=1, texts=["epsilon zeta"], document_id="doc-b"))
    report = write_everywhere(
        [from_source, from_target],
        index=sides.index,
        collections=[SOURCE, TARGET],
        reembedder_for=sides.reembedder_for,
    )
    source, target = sides.points(SOURCE), sides.points(TARGET)

    # As it is into the collection of its model...
    a0 = source[chunk_pid(from_source)]
    assert a0.dense == pytest.approx(vector_for("alpha beta"))
    assert a0.payload["model"] == SOURCE.model_id
    b0 = target[chunk_pid(from_target)]
    assert b0.dense == pytest.approx(from_target.vectors[0].dense)
    assert b0.payload["model"] == TARGET.model_id

    # ...and re-embedded, in the other model's dimension, into the other one.
    for i, text in enumerate(["alpha beta", "gamma delta"]):
        hit = target[chunk_pid(from_source, i)]
        assert hit.dense is not None and len(hit.dense) == TARGET.dimension
        assert hit.dense == pytest.approx(expected(TARGET.dimension, TARGET.model_id, text), abs=1e-6)
        assert hit.payload["model"] == TARGET.model_id
        assert hit.payload["doc_version"] == 1 and hit.payload["text"] == text
        assert hit.sparse == from_source.vectors[i].sparse  # sparse vectors do not depend on the model
    b_in_source = source[chunk_pid(from_target)]
    assert b_in_source.dense is not None and len(b_in_source.dense) == SOURCE.dimension
    assert b_in_source.payload["model"] == SOURCE.model_id

    assert len(source) == len(target) == 3
    assert report.reembedded_points == 3 and report.skipped_done == 0
    assert sides.texts(TARGET) == 2 and sides.texts(SOURCE) == 1
    assert [o.status if o else None for o in report.outcomes] == ["apply", "apply"]


def test_outcomes_align_one_to_one_with_the_events() -> None:
    sides = Sides()
    events = [
        make_event(version=1, document_id="d1"),
        in_target_model(make_event(version=3, document_id="d2")),
        make_event(version=2, document_id="d3", op=ChangeOp.DELETE),
        in_target_model(make_event(version=5, document_id="d4")),
        make_event(version=4, document_id="d5"),
    ]
    report = write_everywhere(
        events, index=sides.index, collections=[SOURCE, TARGET], reembedder_for=sides.reembedder_for
    )
    assert len(report.outcomes) == len(events)
    for event, outcome in zip(events, report.outcomes, strict=True):
        assert outcome is not None
        assert (outcome.document_id, outcome.version, outcome.status) == (
            event.document_id,
            event.version,
            "apply",
        )


def test_without_a_reembedder_a_foreign_change_fails_the_batch_and_nothing_is_written() -> None:
    sides = Sides()
    foreign = make_event(version=1, document_id="d2").model_copy(update={"model": "someone-else"})
    batch = [make_event(version=1, document_id="d1"), foreign]
    with pytest.raises(ModelMismatch, match="someone-else") as mismatch:
        write_everywhere(batch, index=sides.index, collections=[SOURCE, TARGET], reembedder_for=None)
    assert "hash-b" in str(mismatch.value) and "test-model" in str(mismatch.value)
    assert sides.points(SOURCE) == {} and sides.points(TARGET) == {}


def test_without_a_reembedder_a_change_goes_only_to_the_collection_of_its_model() -> None:
    sides = Sides()
    event = make_event(version=1)
    report = write_everywhere([event], index=sides.index, collections=[SOURCE, TARGET], reembedder_for=None)
    assert set(sides.points(SOURCE)) == {chunk_pid(event)}
    assert sides.points(TARGET) == {}  # left to the migration consumer
    assert report.outcomes[0] is not None and report.outcomes[0].status == "apply"
    assert report.reembedded_points == 0


def test_a_redelivered_batch_embeds_nothing() -> None:
    sides = Sides()
    batch = [
        make_event(version=1, texts=["one", "two"], document_id="d1"),
        make_event(version=2, texts=["three"], document_id="d2"),
        make_event(version=3, document_id="d3", op=ChangeOp.DELETE),
    ]
    first = reembed_into(batch, index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    assert first.reembedded_points == 4  # three chunks and a tombstone
    texts, calls = sides.texts(TARGET), list(sides.inner["dst"].calls)
    assert texts == 3
    before = sides.points(TARGET)

    again = reembed_into(batch, index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    assert sides.texts(TARGET) == texts and sides.inner["dst"].calls == calls  # the backend was not called
    assert again.skipped_done == 3 and again.reembedded_points == 0
    assert [o.status if o else None for o in again.outcomes] == ["noop", "noop", "noop"]
    assert all(o is not None and "dst already holds version" in o.reason for o in again.outcomes)
    assert sides.points(TARGET) == before


def test_a_change_the_collection_already_holds_is_skipped_before_embedding() -> None:
    sides = Sides()
    event = make_event(version=1, texts=["held already"])
    index_event(in_target_model(event), index=sides.index, collection=TARGET.name)  # written by the indexer
    report = reembed_into([event], index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    assert sides.texts(TARGET) == 0 and sides.inner["dst"].calls == []
    assert report.skipped_done == 1
    assert report.outcomes[0] is not None and report.outcomes[0].status == "noop"


def test_a_delete_leaves_a_tombstone_in_the_target() -> None:
    sides = Sides()
    upsert = make_event(version=1, texts=["to be deleted"])
    write_everywhere(
        [upsert], index=sides.index, collections=[SOURCE, TARGET], reembedder_for=sides.reembedder_for
    )
    delete = make_event(version=2, op=ChangeOp.DELETE)
    report = write_everywhere(
        [delete], index=sides.index, collections=[SOURCE, TARGET], reembedder_for=sides.reembedder_for
    )
    assert report.outcomes[0] is not None and report.outcomes[0].status == "apply"
    target = sides.points(TARGET)
    tomb = target[tombstone_id(tenant="acme", document_id="doc-1")]
    assert tomb.dense is None and tomb.sparse is None
    assert tomb.payload["state"] == DELETED and tomb.payload["deleted_by_version"] == 2
    chunk = target[chunk_pid(upsert)]
    assert chunk.payload["state"] == DELETED and chunk.payload["deleted_by_version"] == 2
    assert sides.live(TARGET) == {} and sides.live(SOURCE) == {}


def test_an_older_version_after_a_newer_one_is_not_applied() -> None:
    sides = Sides()
    newer, older = make_event(version=2, texts=["newer"]), make_event(version=1, texts=["older"])
    reembed_into([newer], index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    texts = sides.texts(TARGET)
    report = reembed_into([older], index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    assert sides.texts(TARGET) == texts
    assert report.outcomes[0] is not None and report.outcomes[0].status in ("noop", "stale")
    assert report.reembedded_points == 0
    assert [h.payload["text"] for h in sides.live(TARGET).values()] == ["newer"]


def test_two_versions_in_one_batch_end_at_the_newer() -> None:
    sides = Sides()
    batch = [make_event(version=1, texts=["first"]), make_event(version=2, texts=["second"])]
    write_everywhere(
        batch, index=sides.index, collections=[SOURCE, TARGET], reembedder_for=sides.reembedder_for
    )
    for side in (SOURCE, TARGET):
        assert [h.payload["text"] for h in sides.live(side).values()] == ["second"]


def test_a_delete_at_the_same_version_wins_in_the_target_too() -> None:
    """Deletes win version ties (plan_write), so both collections must agree whichever comes second."""
    sides = Sides()
    upsert, delete = make_event(version=2, texts=["tied"]), make_event(version=2, op=ChangeOp.DELETE)
    for event in (upsert, delete):
        write_everywhere(
            [event], index=sides.index, collections=[SOURCE, TARGET], reembedder_for=sides.reembedder_for
        )
    assert sides.live(SOURCE) == {}
    assert sides.live(TARGET) == {}


def test_a_replay_finishes_the_soft_deletes_a_crash_left_undone_in_the_target() -> None:
    """index_event writes new points before soft-deleting old ones; replaying the event finishes the job."""
    sides = Sides()
    v1, v2 = make_event(version=1, texts=["old"]), make_event(version=2, texts=["new"])
    reembed_into([v1], index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    # The crash: v2's new points were written to the target, its soft-deletes were not.
    rewritten = sides.reembedders["dst"]([v2])[0]
    new_point = index_event(rewritten, index=sides.index, collection="dst")
    assert new_point.soft_deleted == 1
    sides.index.set_payload(
        "dst", [chunk_pid(v1)], {"state": LIVE, "deleted_at": None, "deleted_by_version": None}
    )
    assert len(sides.live(TARGET)) == 2

    reembed_into([v2], index=sides.index, collection=TARGET, reembed=sides.reembedders["dst"])
    assert [h.payload["text"] for h in sides.live(TARGET).values()] == ["new"]
