"""Backfill by copying a collection: every point of the source, live ones with a new dense vector.

The embedded runtime has no compacted chunk topic to re-read, so its backfill walks the source
collection in id order instead. Soft-deleted points and tombstones are copied without vectors (they are
never searched, but they carry the version fences that keep a late, older change out). The caller holds
`write_lock` for the moment of writing, the same lock the indexer stage holds while it writes both
collections, and each point is re-read under it: a point that changed since it was embedded is left to
the indexer's own write (it already went to both collections), so a copy never overwrites a newer one.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.indexer.migration.plan import IndexCollection
from services.indexer.ports import LIVE, IndexFilter, IndexHit, IndexPoint, VectorIndex

logger = logging.getLogger(__name__)
_COMPARED = ("doc_version", "state", "content_hash", "deleted_by_version")


class TextEmbedder(Protocol):
    """What the copy needs of the target's model: texts in, one dense row each (the embedding stage's
    backends fit it)."""

    def embed(self, texts: Sequence[str]) -> Any: ...  # a matrix: one row per text


class VectorCache(Protocol):
    """What the copy needs of the embedding cache, keyed by model and content hash."""

    def get_many(self, model_id: str, hashes: Sequence[str]) -> Mapping[str, Any]: ...

    def put_many(self, model_id: str, items: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class PageCopied:
    next_cursor: str | None  # None: the scan reached the end
    scanned: int
    copied: int  # points written to the target
    already_there: int  # points the target already held as they are (a resumed page)


def copy_page(
    *,
    index: VectorIndex,
    source: IndexCollection,
    target: IndexCollection,
    after: str | None,
    limit: int,
    backend: TextEmbedder,
    cache: VectorCache,
    write_lock: threading.Lock,
) -> PageCopied:
    hits, next_cursor = index.scan(source.name, after=after, limit=limit)
    present = _by_id(index, target.name, hits)
    todo = [h for h in hits if not _same(present.get(h.id), h)]
    live = [h for h in todo if _is_live(h)]
    vectors = _embed(live, backend=backend, cache=cache, model_id=target.model_id)
    copied = 0
    with write_lock:
        fresh = _by_id(index, source.name, todo)
        points = []
        for hit in todo:
            now = fresh.get(hit.id)
            if now is None or not _same(now, hit):
                continue  # changed or compacted since the scan: the indexer's own write covers it
            dense = vectors.get(hit.id) if _is_live(hit) else None
            sparse = hit.sparse if _is_live(hit) else None
            payload = (
                {**hit.payload, "model": target.model_id} if "model" in hit.payload else dict(hit.payload)
            )
            points.append(IndexPoint(id=hit.id, dense=dense, sparse=sparse, payload=payload))
        if points:
            index.upsert(target.name, points)
            copied = len(points)
    return PageCopied(
        next_cursor=next_cursor, scanned=len(hits), copied=copied, already_there=len(hits) - len(todo)
    )


def _is_live(hit: IndexHit) -> bool:
    return hit.payload.get("state") == LIVE and hit.dense is not None


def _same(a: IndexHit | None, b: IndexHit) -> bool:
    return a is not None and all(a.payload.get(k) == b.payload.get(k) for k in _COMPARED)


def _by_id(index: VectorIndex, collection: str, hits: list[IndexHit]) -> dict[str, IndexHit]:
    """The points with these ids as `collection` holds them now (payload only)."""
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for hit in hits:
        by_tenant[str(hit.payload.get("tenant"))].append(hit.id)
    found: dict[str, IndexHit] = {}
    for tenant, ids in by_tenant.items():
        scope = IndexFilter(tenant=tenant, point_ids=ids, include_deleted=True)
        for hit in index.scroll(collection, filter=scope, limit=len(ids)):
            found[hit.id] = hit
    return found


def _embed(
    hits: list[IndexHit], *, backend: TextEmbedder, cache: VectorCache, model_id: str
) -> dict[str, list[float]]:
    """Dense vectors by point id, from the cache where the same text was embedded before."""
    by_hash: dict[str, str] = {
        str(h.payload.get("content_hash")): str(h.payload.get("text", "")) for h in hits
    }
    try:
        cached = cache.get_many(model_id, list(by_hash))
    except Exception:  # the cache is best effort, as in the embedding stage
        logger.warning("embedding cache unavailable for reads during backfill", exc_info=True)
        cached = {}
    missing = [h for h in by_hash if h not in cached]
    if missing:
        rows = backend.embed([by_hash[h] for h in missing])
        fresh = dict(zip(missing, rows, strict=True))
        try:
            cache.put_many(model_id, fresh)
        except Exception:
            logger.warning("embedding cache unavailable for writes during backfill", exc_info=True)
        cached = {**cached, **fresh}
    return {h.id: [float(x) for x in cached[str(h.payload.get("content_hash"))]] for h in hits}
