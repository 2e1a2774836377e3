"""Index compaction on the real engines (qdrant-edge, qdrant-client local mode) and the fake: only points
soft-deleted before the cutoff go, every live point and tombstone stays, also beside a concurrent writer."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from qdrant_client import QdrantClient

from schemas import ChangeOp
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.adapters.qdrant import QdrantIndex
from services.indexer.compaction import compact
from services.indexer.logic import TOMBSTONE_CHUNK
from services.indexer.ports import CollectionSpec, DeletedScope, IndexFilter, IndexPoint, VectorIndex
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event

SPEC = CollectionSpec(name="chunks_v1", dense_dim=DIM)
DAY = timedelta(hours=24)
OLD = NOW - 2 * DAY  # soft-deleted long before the cutoff
TENANTS = ("acme", "globex")


def _plus(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


class _Serialised:
    """One call at a time: qdrant-client's local mode is not thread-safe, while a Qdrant server applies a
    shard's operations one after another, which this models (the other engines lock internally)."""

    def __init__(self, inner: VectorIndex) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


def _open(engine: str, root: Path) -> VectorIndex:
    if engine == "edge":
        return EdgeIndex(root / "edge")
    if engine == "qdrant":
        return cast(VectorIndex, _Serialised(QdrantIndex(QdrantClient(path=str(root / "qdrant")))))
    return InMemoryIndex()


@pytest.fixture(params=["edge", "qdrant", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    idx = _open(request.param, tmp_path)
    idx.ensure_collection(SPEC)
    yield idx
    idx.close()


def _pid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _point(name: str, *, tenant: str = "acme", deleted_at: datetime | None = None) -> IndexPoint:
    """A chunk point, live, or soft-deleted at `deleted_at` with the pipeline's ISO 8601 stamp."""
    payload = {
        "tenant": tenant,
        "document_id": f"doc-{name}",
        "chunk_id": name,
        "doc_version": 1,
        "text": name,
        "acl": [],
        "metadata": {},
        "entity_ids": [],
        "state": "live" if deleted_at is None else "deleted",
        "deleted_at": None if deleted_at is None else deleted_at.isoformat(),
        "deleted_by_version": None if deleted_at is None else 2,
    }
    return IndexPoint(
        id=_pid(f"{tenant}/{name}"), dense=[1.0] + [0.0] * (DIM - 1), sparse=None, payload=payload
    )


def _everything(index: VectorIndex) -> dict[str, dict[str, Any]]:
    """Every point of every tenant, live or deleted: id → payload."""
    found: dict[str, dict[str, Any]] = {}
    for tenant in TENANTS:
        scope = IndexFilter(tenant=tenant, include_deleted=True)
        found.update({h.id: h.payload for h in index.scroll(SPEC.name, filter=scope, limit=100_000)})
    return found


def _live(index: VectorIndex) -> set[str]:
    return {
        h.id
        for tenant in TENANTS
        for h in index.scroll(SPEC.name, filter=IndexFilter(tenant=tenant), limit=100_000)
    }


def test_compaction_removes_exactly_the_old_soft_deleted_chunks(index: VectorIndex) -> None:
    # Through the pipeline's own writes: superseded chunks and a deleted document, two days ago...
    for tenant in TENANTS:
        for event in (
            make_event(version=1, texts=["a", "b", "c"], tenant=tenant),
            make_event(version=2, texts=["a", "d"], tenant=tenant),
            make_event(version=1, texts=["x", "y"], tenant=tenant, document_id="doc-2"),
            make_event(version=5, op=ChangeOp.DELETE, tenant=tenant, document_id="doc-2"),
        ):
            index_event(event, index=index, collection=SPEC.name, now=OLD)
    # ...and an hour ago (kept until the retention has passed); plus points stamped in other offsets.
    index_event(
        make_event(version=3, texts=["a"]), index=index, collection=SPEC.name, now=NOW - timedelta(hours=1)
    )
    index.upsert(
        SPEC.name,
        [
            _point("old-local-offset", deleted_at=OLD.astimezone(_plus(5))),
            _point("recent-local-offset", deleted_at=(NOW - timedelta(hours=23)).astimezone(_plus(-7))),
            _point("live-extra", tenant="globex"),
        ],
    )
    before = _everything(index)
    live = _live(index)  # the recorded set no compaction may touch
    recent = {
        pid
        for pid, p in before.items()
        if p["state"] == "deleted" and datetime.fromisoformat(p["deleted_at"]) >= NOW - DAY
    }
    tombstones = {pid for pid, p in before.items() if p["chunk_id"] == TOMBSTONE_CHUNK}
    old = set(before) - live - recent - tombstones
    assert len(old) == 2 * (2 + 2) + 1 and len(recent) == 2 and len(tombstones) == 2

    report = compact(index=index, collection=SPEC.name, retention=DAY, now=NOW)

    after = _everything(index)
    assert set(after) == live | recent | tombstones  # nothing old left, nothing else gone
    assert _live(index) == live
    assert all(after[pid] == before[pid] for pid in after)
    assert (report.scanned, report.due, report.hard_deleted, report.kept_recent_deleted) == (11, 9, 9, 2)
    assert (
        index.count_deleted(SPEC.name, DeletedScope(before=NOW - DAY, keep_chunk_ids=(TOMBSTONE_CHUNK,))) == 0
    )

    again = compact(index=index, collection=SPEC.name, retention=DAY, now=NOW)
    assert (again.due, again.hard_deleted) == (0, 0)
    assert _everything(index) == after


class _WriterBeforePurge:
    """The index, with a concurrent writer's turn between compaction's counting and its delete."""

    def __init__(self, inner: VectorIndex, turn: Callable[[], None]) -> None:
        self._inner = inner
        self._turn = turn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def purge_deleted(self, collection: str, scope: DeletedScope) -> int:
        self._turn()
        return self._inner.purge_deleted(collection, scope)


def test_a_point_written_after_compaction_counted_it_is_not_removed(index: VectorIndex) -> None:
    doomed, restored, live = (
        _point("doomed", deleted_at=OLD),
        _point("restored", deleted_at=OLD),
        _point("live"),
    )
    index.upsert(SPEC.name, [doomed, restored, live])

    def writer_turn() -> None:
        # The document is restored: the same chunk id, written live again, after the scan counted it due;
        # and the live chunk is soft-deleted just now.
        index.upsert(SPEC.name, [_point("restored")])
        index.set_payload(SPEC.name, [live.id], {"state": "deleted", "deleted_at": NOW.isoformat()})

    wrapped = cast(VectorIndex, _WriterBeforePurge(index, writer_turn))
    report = compact(index=wrapped, collection=SPEC.name, retention=DAY, now=NOW)

    after = _everything(index)
    assert report.due == 2 and report.hard_deleted == 1
    assert set(after) == {restored.id, live.id}
    assert after[restored.id]["state"] == "live" and after[live.id]["state"] == "deleted"


def test_compaction_beside_a_writer_keeps_every_point_the_writer_kept(index: VectorIndex) -> None:
    names = [f"p{i}" for i in range(120)]
    index.upsert(SPEC.name, [_point(n, deleted_at=OLD) for n in names])
    last_live: set[str] = set()  # what the writer last left live...
    last_deleted: set[str] = set()  # ...or soft-deleted just now (younger than any cutoff below)
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        rng = random.Random(7)
        try:
            for _ in range(60):
                revive = rng.sample(names, 4)
                index.upsert(SPEC.name, [_point(n) for n in revive])
                last_live.update(revive)
                last_deleted.difference_update(revive)
                if len(last_live) > 4:
                    drop = rng.sample(sorted(last_live), 2)
                    marker = {"state": "deleted", "deleted_at": NOW.isoformat()}
                    index.set_payload(SPEC.name, [_pid(f"acme/{n}") for n in drop], marker)
                    last_live.difference_update(drop)
                    last_deleted.update(drop)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    runs = 0
    while not done.is_set() or runs == 0:
        compact(index=index, collection=SPEC.name, retention=DAY, now=NOW)
        runs += 1
    writer.join()
    compact(index=index, collection=SPEC.name, retention=DAY, now=NOW)  # what the last runs overlapped

    assert errors == []
    after = {p["chunk_id"]: p["state"] for p in _everything(index).values()}
    assert after == {n: "live" for n in last_live} | {n: "deleted" for n in last_deleted}
    assert index.count_deleted(SPEC.name, DeletedScope(before=NOW - DAY)) == 0
