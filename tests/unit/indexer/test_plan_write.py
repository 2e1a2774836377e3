"""Version fencing: out-of-order, duplicate and replayed events converge on the newest version."""

from __future__ import annotations

from schemas import ChangeOp
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.logic import fence, plan_write, point_id, tombstone_id
from services.indexer.ports import DELETED, LIVE, CollectionSpec, IndexFilter, IndexHit
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event

COLLECTION = "chunks_v1"


def _index() -> InMemoryIndex:
    index = InMemoryIndex()
    index.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=DIM))
    return index


def _visible(index: InMemoryIndex, document_id: str = "doc-1") -> list[tuple[str, int]]:
    hits = index.scroll(COLLECTION, filter=IndexFilter(tenant="acme", document_ids=[document_id]), limit=1000)
    return sorted((h.payload["text"], h.payload["doc_version"]) for h in hits)


def _hit(pid: str, **payload: object) -> IndexHit:
    return IndexHit(id=pid, score=0.0, payload=dict(payload))


def test_point_ids_are_deterministic_and_scoped_by_tenant_and_document() -> None:
    a = point_id(tenant="t1", document_id="d", chunk_id="c")
    assert a == point_id(tenant="t1", document_id="d", chunk_id="c")
    assert a != point_id(tenant="t2", document_id="d", chunk_id="c")
    assert a != point_id(tenant="t1", document_id="d2", chunk_id="c")


def test_payload_carries_the_documented_fields() -> None:
    event = make_event(version=3, texts=["alpha beta"], acl=["g1"], metadata={"lang": "en"})
    plan = plan_write(event, [], NOW)
    [point] = plan.upserts
    p = point.payload
    assert p["tenant"] == "acme"
    assert p["document_id"] == "doc-1"
    assert p["doc_version"] == 3
    assert p["state"] == LIVE
    assert p["deleted_at"] is None
    assert p["deleted_by_version"] is None
    assert p["acl"] == ["g1"]
    assert p["metadata"] == {"lang": "en"}
    assert p["entity_ids"] == ["ent-0"]
    assert p["source"] == {"kind": "api", "name": "default"}
    assert p["model"] == "test-model"
    assert p["indexed_at"] == NOW.isoformat()
    assert p["text"] == "alpha beta"
    assert point.id == point_id(tenant="acme", document_id="doc-1", chunk_id=p["chunk_id"])


def test_fence_takes_the_highest_version_or_deletion_marker() -> None:
    assert fence([]) is None
    hits = [_hit("a", doc_version=3, deleted_by_version=None), _hit("b", doc_version=2, deleted_by_version=5)]
    assert fence(hits) == 5


def test_older_event_after_newer_is_skipped() -> None:
    index = _index()
    assert index_event(make_event(version=2), index=index, collection=COLLECTION, now=NOW).status == "apply"
    outcome = index_event(make_event(version=1), index=index, collection=COLLECTION, now=NOW)
    assert outcome.status == "stale"
    assert "older" in outcome.reason
    assert _visible(index) == [("text of v2", 2)]


def test_duplicate_delivery_is_a_noop() -> None:
    index = _index()
    event = make_event(version=1, texts=["a b", "c d"])
    index_event(event, index=index, collection=COLLECTION, now=NOW)
    again = index_event(event, index=index, collection=COLLECTION, now=NOW)
    assert (again.status, again.upserted, again.soft_deleted) == ("noop", 0, 0)
    assert _visible(index) == [("a b", 1), ("c d", 1)]


def test_rechunk_with_fewer_chunks_soft_deletes_the_old_ones() -> None:
    index = _index()
    index_event(
        make_event(version=1, texts=["one", "two", "three"]), index=index, collection=COLLECTION, now=NOW
    )
    outcome = index_event(
        make_event(version=2, texts=["one", "four"]), index=index, collection=COLLECTION, now=NOW
    )
    assert (outcome.upserted, outcome.soft_deleted) == (2, 2)
    assert _visible(index) == [("four", 2), ("one", 2)]
    deleted = [h for h in index.document_points(COLLECTION, "acme", "doc-1") if h.payload["state"] == DELETED]
    assert sorted(h.payload["text"] for h in deleted) == ["three", "two"]
    assert all(h.payload["deleted_by_version"] == 2 and h.payload["deleted_at"] for h in deleted)


def test_delete_then_older_upsert_is_skipped_even_for_a_never_indexed_document() -> None:
    index = _index()
    deleted = index_event(
        make_event(version=5, op=ChangeOp.DELETE), index=index, collection=COLLECTION, now=NOW
    )
    assert deleted.status == "apply"
    assert deleted.upserted == 1
    outcome = index_event(make_event(version=4), index=index, collection=COLLECTION, now=NOW)
    assert outcome.status == "stale"
    assert _visible(index) == []
    [tomb] = index.document_points(COLLECTION, "acme", "doc-1")
    assert tomb.id == tombstone_id(tenant="acme", document_id="doc-1")


def test_delete_soft_deletes_every_live_chunk_and_a_newer_upsert_revives_the_document() -> None:
    index = _index()
    index_event(make_event(version=1, texts=["x", "y"]), index=index, collection=COLLECTION, now=NOW)
    outcome = index_event(
        make_event(version=2, op=ChangeOp.DELETE), index=index, collection=COLLECTION, now=NOW
    )
    assert outcome.soft_deleted == 2
    assert _visible(index) == []
    index_event(make_event(version=3, texts=["x"]), index=index, collection=COLLECTION, now=NOW)
    assert _visible(index) == [("x", 3)]


def test_delete_wins_a_tie_with_an_upsert_of_the_same_version_in_either_order() -> None:
    for order in ([ChangeOp.UPSERT, ChangeOp.DELETE], [ChangeOp.DELETE, ChangeOp.UPSERT]):
        index = _index()
        for op in order:
            index_event(make_event(version=7, op=op), index=index, collection=COLLECTION, now=NOW)
        assert _visible(index) == [], order


def test_crash_between_upsert_and_soft_delete_converges_on_replay() -> None:
    index = _index()
    index_event(make_event(version=1, texts=["old a", "old b"]), index=index, collection=COLLECTION, now=NOW)
    event = make_event(version=2, texts=["new"])
    plan = plan_write(event, index.document_points(COLLECTION, "acme", "doc-1"), NOW)
    index.upsert(COLLECTION, plan.upserts)  # the process dies here, before the soft-deletes
    assert _visible(index) == [("new", 2), ("old a", 1), ("old b", 1)]
    replay = index_event(event, index=index, collection=COLLECTION, now=NOW)
    assert (replay.status, replay.upserted, replay.soft_deleted) == ("apply", 0, 2)
    assert _visible(index) == [("new", 2)]


def test_crash_midway_through_a_split_upsert_fills_the_missing_points_on_replay() -> None:
    index = _index()
    event = make_event(version=1, texts=["p", "q", "r"])
    plan = plan_write(event, [], NOW)
    index.upsert(COLLECTION, plan.upserts[:1])
    replay = index_event(event, index=index, collection=COLLECTION, now=NOW)
    assert replay.upserted == 2
    assert _visible(index) == [("p", 1), ("q", 1), ("r", 1)]


def test_unchanged_chunk_keeps_its_id_and_takes_the_new_version() -> None:
    index = _index()
    index_event(make_event(version=1, texts=["same"]), index=index, collection=COLLECTION, now=NOW)
    index_event(make_event(version=2, texts=["same"]), index=index, collection=COLLECTION, now=NOW)
    assert _visible(index) == [("same", 2)]
    assert len(index.document_points(COLLECTION, "acme", "doc-1")) == 1


def test_documents_and_tenants_are_fenced_independently() -> None:
    index = _index()
    index_event(make_event(version=9, document_id="d9"), index=index, collection=COLLECTION, now=NOW)
    index_event(make_event(version=9, tenant="other"), index=index, collection=COLLECTION, now=NOW)
    assert index_event(make_event(version=1), index=index, collection=COLLECTION, now=NOW).status == "apply"
