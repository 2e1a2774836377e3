"""The embedded runtime's backfill: copy the source collection page by page, live points with a vector of
the target's model, soft-deleted points and tombstones without vectors, never over a newer write."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import cast

import pytest

from schemas import ChangeOp
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.adapters.fake import HashingBackend
from services.embedder.ports import Vector
from services.embedder.reembed import CountingBackend
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.migration.backfill import PageCopied, copy_page
from services.indexer.migration.plan import IndexCollection
from services.indexer.ports import DELETED, LIVE, CollectionSpec, IndexHit
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event

SOURCE = IndexCollection(name="src", alias="chunks", model_id="test-model", dimension=DIM, profile=None)
TARGET = IndexCollection(name="dst", alias="chunks", model_id="hash-32", dimension=32, profile=None)
TARGET_2 = IndexCollection(name="dst2", alias="chunks", model_id="hash-32", dimension=32, profile=None)
PAGE = 3


class HookedLock:
    """The indexer's write lock, with something happening just as the backfill takes it."""

    def __init__(self, before: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._before = before
        self.taken = 0

    def __enter__(self) -> bool:
        self._before()
        self.taken += 1
        return self._lock.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.__exit__(kind, exc, tb)


class FailingCache:
    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, Vector]:
        raise ConnectionError("cache down")

    def put_many(self, model_id: str, items: dict[str, Vector]) -> None:
        raise ConnectionError("cache down")


@pytest.fixture
def index() -> InMemoryIndex:
    """Two tenants with the same document ids; live chunks, superseded chunks, deleted documents."""
    index = InMemoryIndex()
    for c in (SOURCE, TARGET, TARGET_2):
        index.ensure_collection(CollectionSpec(name=c.name, dense_dim=c.dimension))
    for tenant in ("acme", "globex"):
        events = [
            make_event(version=1, texts=["alpha one", "beta two"], document_id="a", tenant=tenant),
            make_event(version=2, texts=["alpha one", "gamma three"], document_id="a", tenant=tenant),
            make_event(version=1, texts=["delta four"], document_id="b", tenant=tenant),
            make_event(version=2, document_id="b", op=ChangeOp.DELETE, tenant=tenant),
            make_event(version=1, texts=[f"{tenant} only"], document_id="c", tenant=tenant),
        ]
        for event in events:
            index_event(event, index=index, collection=SOURCE.name, now=NOW)
    return index


def _all(index: InMemoryIndex, name: str) -> dict[str, IndexHit]:
    hits, cursor = index.scan(name, after=None, limit=10_000)
    assert cursor is None
    return {h.id: h for h in hits}


def _copy_all(
    index: InMemoryIndex,
    backend: CountingBackend,
    cache: InMemoryEmbeddingCache | FailingCache,
    *,
    target: IndexCollection = TARGET,
) -> list[PageCopied]:
    pages: list[PageCopied] = []
    cursor: str | None = None
    while True:
        page = copy_page(
            index=index,
            source=SOURCE,
            target=target,
            after=cursor,
            limit=PAGE,
            backend=backend,
            cache=cache,  # type: ignore[arg-type]
            write_lock=threading.Lock(),
        )
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "the scan does not end"


def _backend() -> CountingBackend:
    return CountingBackend(HashingBackend(dimension=TARGET.dimension, model_id=TARGET.model_id))


def test_a_full_copy_holds_every_point_in_the_targets_model(index: InMemoryIndex) -> None:
    backend = _backend()
    pages = _copy_all(index, backend, InMemoryEmbeddingCache())
    source, target = _all(index, SOURCE.name), _all(index, TARGET.name)

    assert len(pages) > 2  # several pages, the last one says the end
    assert sum(p.scanned for p in pages) == len(source) == sum(p.copied for p in pages)
    assert all(p.already_there == 0 for p in pages)
    assert set(target) == set(source)

    live = [pid for pid, h in source.items() if h.payload["state"] == LIVE]
    deleted = [pid for pid, h in source.items() if h.payload["state"] == DELETED]
    # Per tenant: a (v2) and c live; the chunk a v2 dropped, b's chunk and b's tombstone deleted.
    assert len(live) == 6 and len(deleted) == 6
    reference = HashingBackend(dimension=TARGET.dimension, model_id=TARGET.model_id)
    for pid in live:
        src, dst = source[pid], target[pid]
        assert dst.dense is not None and len(dst.dense) == TARGET.dimension
        expected = [float(x) for x in reference.embed([src.payload["text"]])[0]]
        assert dst.dense == pytest.approx(expected, abs=1e-6)
        assert dst.sparse == src.sparse
        assert dst.payload == {**src.payload, "model": TARGET.model_id}
    for pid in deleted:
        src, dst = source[pid], target[pid]
        assert dst.dense is None and dst.sparse is None
        assert dst.payload["state"] == DELETED
        assert dst.payload["deleted_by_version"] == src.payload["deleted_by_version"]
        assert dst.payload["doc_version"] == src.payload["doc_version"]
        assert {k: v for k, v in dst.payload.items() if k != "model"} == {
            k: v for k, v in src.payload.items() if k != "model"
        }
    # One text per distinct live content, shared by the tenants: alpha, gamma, and each tenant's own.
    assert backend.texts == len({source[pid].payload["content_hash"] for pid in live}) == 4


def test_a_second_pass_copies_and_embeds_nothing(index: InMemoryIndex) -> None:
    backend, cache = _backend(), InMemoryEmbeddingCache()
    _copy_all(index, backend, cache)
    texts, calls = backend.texts, list(cast(HashingBackend, backend.inner).calls)
    before = _all(index, TARGET.name)

    again = _copy_all(index, backend, InMemoryEmbeddingCache())  # an empty cache: only the check skips
    assert [p.copied for p in again] == [0] * len(again)
    assert all(p.already_there == p.scanned for p in again)
    assert backend.texts == texts and cast(HashingBackend, backend.inner).calls == calls
    assert _all(index, TARGET.name) == before


def test_a_resumed_page_skips_what_the_target_already_holds(index: InMemoryIndex) -> None:
    backend, cache = _backend(), InMemoryEmbeddingCache()
    first = copy_page(
        index=index,
        source=SOURCE,
        target=TARGET,
        after=None,
        limit=PAGE,
        backend=backend,
        cache=cache,
        write_lock=threading.Lock(),
    )
    # A crash before the cursor was saved: the same page again, and one page further.
    again = copy_page(
        index=index,
        source=SOURCE,
        target=TARGET,
        after=None,
        limit=PAGE + 2,
        backend=backend,
        cache=InMemoryEmbeddingCache(),
        write_lock=threading.Lock(),
    )
    assert first.copied == PAGE
    assert again.already_there == PAGE and again.copied == 2 and again.scanned == PAGE + 2


def test_a_point_changed_between_the_scan_and_the_write_is_not_copied(index: InMemoryIndex) -> None:
    first_ids = [h.id for h in index.scan(SOURCE.name, after=None, limit=PAGE)[0]]
    changed, removed = first_ids[0], first_ids[1]
    before = _all(index, SOURCE.name)[changed]

    def indexer_writes() -> None:
        # The indexer writes a newer version of one point and compaction removes another, just before
        # the backfill takes the lock.
        index.set_payload(SOURCE.name, [changed], {"doc_version": 99, "state": LIVE})
        index.delete_points(SOURCE.name, [removed])

    lock = HookedLock(indexer_writes)
    page = copy_page(
        index=index,
        source=SOURCE,
        target=TARGET,
        after=None,
        limit=PAGE,
        backend=_backend(),
        cache=InMemoryEmbeddingCache(),
        write_lock=cast(threading.Lock, lock),
    )
    assert lock.taken == 1
    assert page.scanned == PAGE and page.copied == PAGE - 2
    target = _all(index, TARGET.name)
    assert changed not in target and removed not in target
    assert set(target) == set(first_ids[2:])
    assert before.payload["doc_version"] != 99


def test_a_target_with_the_same_model_reuses_cached_vectors(index: InMemoryIndex) -> None:
    backend, cache = _backend(), InMemoryEmbeddingCache()
    _copy_all(index, backend, cache)
    texts = backend.texts
    assert texts > 0
    _copy_all(index, backend, cache, target=TARGET_2)
    assert backend.texts == texts
    first, second = _all(index, TARGET.name), _all(index, TARGET_2.name)
    assert set(first) == set(second)
    assert all(first[pid].dense == second[pid].dense for pid in first)


def test_an_unavailable_cache_only_costs_embeddings(index: InMemoryIndex) -> None:
    backend = _backend()
    pages = _copy_all(index, backend, FailingCache())
    assert sum(p.copied for p in pages) == index.size(SOURCE.name)
    assert set(_all(index, TARGET.name)) == set(_all(index, SOURCE.name))
