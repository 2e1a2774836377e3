"""Index compaction on the in-memory index: what goes, what stays, and that fences survive it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas import ChangeOp
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.compaction import compact
from services.indexer.logic import TOMBSTONE_CHUNK, tombstone_id
from services.indexer.ports import CollectionSpec, DeletedScope, IndexFilter, IndexPoint
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event

COLLECTION = "chunks_v1"
DAY = timedelta(hours=24)


@pytest.fixture
def index() -> InMemoryIndex:
    idx = InMemoryIndex()
    idx.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=DIM))
    return idx


def _all(index: InMemoryIndex, tenant: str = "acme") -> dict[str, dict[str, object]]:
    """Every point of the tenant, live or deleted: id → payload."""
    scope = IndexFilter(tenant=tenant, include_deleted=True)
    return {h.id: h.payload for h in index.scroll(COLLECTION, filter=scope, limit=10_000)}


def _live_ids(index: InMemoryIndex, tenant: str = "acme") -> set[str]:
    return {h.id for h in index.scroll(COLLECTION, filter=IndexFilter(tenant=tenant), limit=10_000)}


def _index(index: InMemoryIndex, *events: object, at: timedelta = timedelta(0)) -> None:
    for event in events:
        index_event(event, index=index, collection=COLLECTION, now=NOW + at)  # type: ignore[arg-type]


def test_old_soft_deleted_chunks_go_recent_ones_live_ones_and_tombstones_stay(index: InMemoryIndex) -> None:
    # Two days ago: doc-1 v1 (two chunks), then v2 replaces one of them; doc-2 is created and deleted.
    _index(index, make_event(version=1, texts=["a", "b"]), at=-2 * DAY)
    _index(index, make_event(version=2, texts=["a", "c"]), at=-2 * DAY)
    _index(
        index,
        make_event(version=1, texts=["x"], document_id="doc-2"),
        make_event(version=2, op=ChangeOp.DELETE, document_id="doc-2"),
        at=-2 * DAY,
    )
    # An hour ago: doc-3 loses a chunk (recently soft-deleted, kept until the retention has passed).
    _index(index, make_event(version=1, texts=["p", "q"], document_id="doc-3"), at=-2 * DAY)
    _index(index, make_event(version=2, texts=["p"], document_id="doc-3"), at=-timedelta(hours=1))
    before = _all(index)
    live = _live_ids(index)
    old_deleted = {
        pid
        for pid, p in before.items()
        if p["state"] == "deleted"
        and p["chunk_id"] != TOMBSTONE_CHUNK
        and datetime.fromisoformat(str(p["deleted_at"])) < NOW - DAY
    }
    assert len(old_deleted) == 2  # doc-1's "b" and doc-2's "x"

    report = compact(index=index, collection=COLLECTION, retention=DAY, now=NOW)

    after = _all(index)
    assert report.hard_deleted == 2
    assert report.scanned == 3 and report.due == 2 and report.kept_recent_deleted == 1
    assert set(after) == set(before) - old_deleted
    assert live <= set(after)
    assert tombstone_id(tenant="acme", document_id="doc-2") in after  # older than the retention, kept
    again = compact(index=index, collection=COLLECTION, retention=DAY, now=NOW)
    assert (again.due, again.hard_deleted, again.kept_recent_deleted) == (0, 0, 1)
    assert _all(index) == after


def test_a_compacted_document_still_fences_replays_of_older_versions(index: InMemoryIndex) -> None:
    v1 = make_event(version=1, texts=["a", "b"])
    v2 = make_event(version=2, texts=["c"])
    delete = make_event(version=3, op=ChangeOp.DELETE)
    _index(index, v1, v2, delete)

    compact(index=index, collection=COLLECTION, retention=timedelta(0), now=NOW + timedelta(seconds=1))

    assert list(_all(index)) == [tombstone_id(tenant="acme", document_id="doc-1")]
    for old in (v1, v2, delete):
        outcome = index_event(old, index=index, collection=COLLECTION, now=NOW + DAY)
        assert outcome.status in ("stale", "noop"), outcome
    assert _live_ids(index) == set()


def test_retention_zero_takes_everything_soft_deleted_before_now_and_nothing_live(
    index: InMemoryIndex,
) -> None:
    _index(index, make_event(version=1, texts=["a", "b"]), make_event(version=2, texts=["b", "c"]))
    live = _live_ids(index)

    report = compact(index=index, collection=COLLECTION, retention=timedelta(0), now=NOW + timedelta(1))

    assert report.hard_deleted == 1
    assert set(_all(index)) == live


def test_dry_run_counts_and_deletes_nothing(index: InMemoryIndex) -> None:
    _index(index, make_event(version=1, texts=["a", "b"]), make_event(version=2, texts=["c"]), at=-2 * DAY)
    before = _all(index)

    report = compact(index=index, collection=COLLECTION, retention=DAY, now=NOW, dry_run=True)

    assert report.dry_run and report.due == 2 and report.hard_deleted == 0 and report.kept_recent_deleted == 0
    assert _all(index) == before


def test_an_alias_is_resolved_once_and_reported(index: InMemoryIndex) -> None:
    index.switch_alias("chunks", COLLECTION)
    _index(index, make_event(version=1, texts=["a"]), make_event(version=2, texts=["b"]), at=-2 * DAY)

    report = compact(index=index, collection="chunks", retention=DAY, now=NOW)

    assert report.collection == COLLECTION and report.hard_deleted == 1


def test_every_tenant_is_compacted(index: InMemoryIndex) -> None:
    for tenant in ("acme", "globex"):
        _index(
            index,
            make_event(version=1, texts=["a"], tenant=tenant),
            make_event(version=2, texts=["b"], tenant=tenant),
            at=-2 * DAY,
        )

    assert compact(index=index, collection=COLLECTION, retention=DAY, now=NOW).hard_deleted == 2
    assert len(_all(index, "acme")) == len(_all(index, "globex")) == 1


def test_negative_retention_is_refused(index: InMemoryIndex) -> None:
    with pytest.raises(ValueError, match="negative"):
        compact(index=index, collection=COLLECTION, retention=-DAY, now=NOW)


def test_deleted_scope_needs_a_parsable_deleted_at_before_the_bound(index: InMemoryIndex) -> None:
    def point(name: str, deleted_at: object) -> IndexPoint:
        payload = {"tenant": "acme", "chunk_id": name, "state": "deleted", "deleted_at": deleted_at}
        return IndexPoint(id=name, dense=None, sparse=None, payload=payload)

    index.upsert(
        COLLECTION,
        [
            point("offset", (NOW - DAY).astimezone().isoformat()),  # a local offset: compared as an instant
            point("naive", (NOW - DAY).replace(tzinfo=None).isoformat()),  # no offset: UTC, as in Qdrant
            point("missing", None),
            point("junk", "yesterday"),
            point("recent", NOW.isoformat()),
        ],
    )
    due = DeletedScope(before=NOW - timedelta(hours=1))

    assert index.count_deleted(COLLECTION, due) == 2
    assert index.count_deleted(COLLECTION, DeletedScope()) == 5
    assert index.count_deleted(COLLECTION, DeletedScope(keep_chunk_ids=("junk", "naive"))) == 3
    assert index.purge_deleted(COLLECTION, due) == 2
    assert sorted(_all(index)) == ["junk", "missing", "recent"]
