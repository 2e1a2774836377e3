"""In-memory `VectorIndex`: the fake for unit tests, with the same filter and IDF semantics as Qdrant."""

from __future__ import annotations

import copy
import math
import threading
from collections import Counter
from datetime import datetime

from schemas import DateRangeFilter, MatchFilter, RangeFilter, SparseVector
from services.indexer.adapters._common import as_utc, check_metadata_key, check_name
from services.indexer.errors import CollectionNotFound, IndexConfigError
from services.indexer.ports import (
    DELETED,
    DENSE,
    LIVE,
    CollectionSpec,
    DeletedScope,
    IndexFilter,
    IndexHit,
    IndexPoint,
    MetadataIndexKind,
    Payload,
    VectorName,
)


class InMemoryIndex:
    """A dict of collections of points; exact search, deep copies in and out so callers cannot alias state."""

    def __init__(self) -> None:
        self._specs: dict[str, CollectionSpec] = {}
        self._points: dict[str, dict[str, IndexPoint]] = {}
        self._aliases: dict[str, str] = {}
        self.metadata_indexes: dict[tuple[str, str], MetadataIndexKind] = {}  # (collection, key) -> kind
        self._lock = threading.RLock()

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection, or check that the existing one matches."""
        with self._lock:
            check_name(spec.name)
            if spec.name in self._aliases:
                raise IndexConfigError(f"{spec.name!r} is an alias")
            existing = self._specs.get(spec.name)
            if existing is not None and existing != spec:
                raise IndexConfigError(f"collection {spec.name!r} exists as {existing}")
            self._specs[spec.name] = spec
            self._points.setdefault(spec.name, {})

    def collection_exists(self, name: str) -> bool:
        """Whether a collection of this name exists."""
        return name in self._specs

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        return sorted(self._specs)

    def drop_collection(self, name: str) -> None:
        """Delete a collection and its aliases."""
        with self._lock:
            self._specs.pop(name, None)
            self._points.pop(name, None)
            self._aliases = {a: c for a, c in self._aliases.items() if c != name}

    def resolve_alias(self, alias: str) -> str | None:
        """The collection an alias points at, or None."""
        return self._aliases.get(alias)

    def switch_alias(self, alias: str, collection: str) -> None:
        """Create or move an alias."""
        with self._lock:
            check_name(alias)
            if collection not in self._specs:
                raise CollectionNotFound(collection)
            if alias in self._specs:
                raise IndexConfigError(f"{alias!r} is a collection")
            self._aliases = {**self._aliases, alias: collection}

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        """Insert or replace points by id."""
        with self._lock:
            store = self._store(collection)
            for p in points:
                store[p.id] = copy.deepcopy(p)

    def set_payload(self, collection: str, ids: list[str], payload: Payload) -> None:
        """Merge payload keys into existing points; unknown ids are ignored."""
        with self._lock:
            store = self._store(collection)
            for pid in ids:
                if pid in store:
                    p = store[pid]
                    store[pid] = IndexPoint(p.id, p.dense, p.sparse, {**p.payload, **copy.deepcopy(payload)})

    def delete_points(self, collection: str, ids: list[str]) -> None:
        """Remove points by id."""
        with self._lock:
            store = self._store(collection)
            for pid in ids:
                store.pop(pid, None)

    def count_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Number of soft-deleted points in scope."""
        with self._lock:
            return sum(1 for p in self._store(collection).values() if in_deleted_scope(p, scope))

    def purge_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Remove the soft-deleted points in scope, under the lock every write takes."""
        with self._lock:
            store = self._store(collection)
            doomed = [pid for pid, p in store.items() if in_deleted_scope(p, scope)]
            for pid in doomed:
                del store[pid]
            return len(doomed)

    def index_metadata(self, collection: str, key: str, kind: MetadataIndexKind) -> None:
        """Record the index: filters here scan in Python either way, with the same results."""
        check_metadata_key(key)
        with self._lock:
            self._store(collection)
            self.metadata_indexes[(self._aliases.get(collection, collection), key)] = kind

    def search(
        self,
        collection: str,
        *,
        using: VectorName,
        vector: list[float] | SparseVector,
        filter: IndexFilter,
        limit: int,
    ) -> list[IndexHit]:
        """Exact nearest points, best first."""
        with self._lock:
            store = self._store(collection)
            candidates = [p for p in store.values() if matches(p, filter)]
            if using == DENSE:
                assert isinstance(vector, list)
                scored = [(_cosine(vector, p.dense), p) for p in candidates if p.dense is not None]
            else:
                assert isinstance(vector, SparseVector)
                idf = _idf(list(store.values()), vector.indices)
                scored = [(_sparse(vector, p.sparse, idf), p) for p in candidates if p.sparse is not None]
                scored = [(s, p) for s, p in scored if s > 0]
            scored.sort(key=lambda sp: (-sp[0], sp[1].id))
            return [IndexHit(p.id, s, copy.deepcopy(p.payload)) for s, p in scored[:limit]]

    def scroll(
        self, collection: str, *, filter: IndexFilter, limit: int, with_vectors: bool = False
    ) -> list[IndexHit]:
        """Matching points ordered by id."""
        with self._lock:
            found = sorted(
                (p for p in self._store(collection).values() if matches(p, filter)),
                key=lambda p: p.id,
            )
            return [
                IndexHit(
                    p.id,
                    0.0,
                    copy.deepcopy(p.payload),
                    p.dense if with_vectors else None,
                    p.sparse if with_vectors else None,
                )
                for p in found[:limit]
            ]

    def count(self, collection: str, filter: IndexFilter) -> int:
        """Number of matching points."""
        with self._lock:
            return sum(1 for p in self._store(collection).values() if matches(p, filter))

    def document_points(self, collection: str, tenant: str, document_id: str) -> list[IndexHit]:
        """Every point of a document, live or deleted."""
        scope = IndexFilter(tenant=tenant, document_ids=[document_id], include_deleted=True)
        return self.scroll(collection, filter=scope, limit=1_000_000)

    def size(self, collection: str) -> int:
        with self._lock:
            return len(self._store(collection))

    def scan(self, collection: str, *, after: str | None, limit: int) -> tuple[list[IndexHit], str | None]:
        """Every point from `after` on, ordered by id, with vectors; and where the next page starts."""
        with self._lock:
            ordered = sorted(p for p in self._store(collection) if after is None or p >= after)
            page, rest = ordered[:limit], ordered[limit:]
            hits = [
                IndexHit(p.id, 0.0, copy.deepcopy(p.payload), p.dense, p.sparse)
                for p in (self._store(collection)[i] for i in page)
            ]
            return hits, (rest[0] if rest else None)

    def flush(self) -> None:
        """Nothing to do: every write is already applied when it returns."""

    def close(self) -> None:
        """Nothing to release."""

    def _store(self, name: str) -> dict[str, IndexPoint]:
        target = self._aliases.get(name, name)
        if target not in self._points:
            raise CollectionNotFound(name)
        return self._points[target]


def matches(point: IndexPoint, f: IndexFilter) -> bool:
    """Qdrant's semantics for the neutral filter, evaluated in Python."""
    payload = point.payload
    if f.point_ids is not None and point.id not in f.point_ids:
        return False
    if payload.get("tenant") != f.tenant:
        return False
    if not f.include_deleted and payload.get("state") != LIVE:
        return False
    acl = payload.get("acl") or []
    if f.acl_any is not None and acl and not set(acl) & set(f.acl_any):
        return False
    if f.document_ids is not None and payload.get("document_id") not in f.document_ids:
        return False
    metadata = payload.get("metadata") or {}
    return (
        all(_match(metadata.get(m.key), m) for m in f.match)
        and all(_in_range(metadata.get(r.key), r) for r in f.range)
        and all(_in_dates(metadata.get(d.key), d) for d in f.date_range)
    )


def in_deleted_scope(point: IndexPoint, scope: DeletedScope) -> bool:
    """Qdrant's semantics for a `DeletedScope`: a missing or unparsable `deleted_at` matches no bound."""
    payload = point.payload
    if payload.get("state") != DELETED or payload.get("chunk_id") in scope.keep_chunk_ids:
        return False
    if scope.before is None:
        return True
    deleted_at = _parse_moment(payload.get("deleted_at"))
    before = as_utc(scope.before)
    return deleted_at is not None and before is not None and deleted_at < before


def _values(v: object) -> list[object]:
    return v if isinstance(v, list) else [] if v is None else [v]


def _equal(stored: object, wanted: object) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return type(stored) is type(wanted) and stored == wanted
    if isinstance(wanted, int | float) and isinstance(stored, int | float):
        return float(stored) == float(wanted)
    return stored == wanted


def _match(stored: object, m: MatchFilter) -> bool:
    values = _values(stored)
    if m.any is not None:
        return any(_equal(s, w) for s in values for w in m.any)
    if m.value is None:
        return not values
    return all(any(_equal(s, w) for s in values) for w in _values(m.value))


def _in_range(stored: object, r: RangeFilter) -> bool:
    nums = [float(v) for v in _values(stored) if isinstance(v, int | float) and not isinstance(v, bool)]
    return any(
        (r.gte is None or x >= r.gte)
        and (r.gt is None or x > r.gt)
        and (r.lte is None or x <= r.lte)
        and (r.lt is None or x < r.lt)
        for x in nums
    )


def _in_dates(stored: object, d: DateRangeFilter) -> bool:
    moments = [m for m in (_parse_moment(v) for v in _values(stored)) if m is not None]
    gte, gt, lte, lt = as_utc(d.gte), as_utc(d.gt), as_utc(d.lte), as_utc(d.lt)
    return any(
        (gte is None or m >= gte)
        and (gt is None or m > gt)
        and (lte is None or m <= lte)
        and (lt is None or m < lt)
        for m in moments
    )


def _parse_moment(value: object) -> datetime | None:
    """An ISO 8601 date or date-time string as UTC; anything else matches no date range, as in Qdrant."""
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _cosine(a: list[float], b: list[float] | None) -> float:
    assert b is not None
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(x * x for x in b)) or 1.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def _idf(points: list[IndexPoint], terms: list[int]) -> dict[int, float]:
    # Qdrant's IDF modifier: ln((N - n + 0.5) / (n + 0.5) + 1) over every point holding a sparse vector.
    holders = [set(p.sparse.indices) for p in points if p.sparse is not None]
    df = Counter(t for s in holders for t in terms if t in s)
    n_docs = len(holders)
    return {t: math.log((n_docs - df[t] + 0.5) / (df[t] + 0.5) + 1.0) for t in terms}


def _sparse(query: SparseVector, doc: SparseVector | None, idf: dict[int, float]) -> float:
    assert doc is not None
    weights = dict(zip(doc.indices, doc.values, strict=True))
    return sum(v * weights.get(i, 0.0) * idf[i] for i, v in zip(query.indices, query.values, strict=True))
