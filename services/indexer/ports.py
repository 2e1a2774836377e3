"""Neutral types and the `VectorIndex` port shared by the indexer and the query service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from schemas import DateRangeFilter, MatchFilter, RangeFilter, SparseVector

DENSE = "dense"
SPARSE = "sparse"

Distance = Literal["cosine", "dot", "euclid"]
VectorName = Literal["dense", "sparse"]
MetadataIndexKind = Literal["keyword", "integer", "float", "bool", "datetime"]
Payload = dict[str, Any]

# Payload fields with an index (keyword unless listed in INTEGER_FIELDS).
INDEXED_FIELDS = ("tenant", "document_id", "state", "acl", "doc_version", "entity_ids")
INTEGER_FIELDS = frozenset({"doc_version"})

LIVE = "live"
DELETED = "deleted"

# Fixed forever: changing it would give every chunk a new id and duplicate the whole index.
POINT_NAMESPACE = uuid.UUID("6f1c1e4e-5b4a-5e0c-9d53-6a1f0c2b7e11")


def point_id(*, tenant: str, document_id: str, chunk_id: str) -> str:
    """Deterministic point id of a chunk, so a redelivered event overwrites instead of duplicating, and a
    reader (the graph retriever) can address a chunk it knows by document and chunk id."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}/{document_id}/{chunk_id}"))


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """A collection: a named dense vector `dense` and a named sparse vector `sparse` with the IDF modifier."""

    name: str
    dense_dim: int
    distance: Distance = "cosine"


@dataclass(frozen=True, slots=True)
class IndexPoint:
    """One point to write; a point without vectors (a tombstone) is never returned by a search."""

    id: str  # a UUID, always derived deterministically so a retry overwrites instead of duplicating
    dense: list[float] | None
    sparse: SparseVector | None
    payload: Payload


@dataclass(frozen=True, slots=True)
class IndexFilter:
    """Scope of a read: the tenant is mandatory, every other condition narrows it further."""

    tenant: str
    acl_any: list[str] | None = None  # None: no ACL restriction; else public chunks or a shared group
    match: list[MatchFilter] = field(default_factory=list)  # on payload `metadata.<key>`
    range: list[RangeFilter] = field(default_factory=list)  # on payload `metadata.<key>`
    date_range: list[DateRangeFilter] = field(default_factory=list)  # ISO 8601 strings in `metadata.<key>`
    document_ids: list[str] | None = None
    point_ids: list[str] | None = None  # only these points (e.g. chunks the knowledge graph proposes)
    include_deleted: bool = False


@dataclass(frozen=True, slots=True)
class DeletedScope:
    """Soft-deleted points of every tenant: those whose `deleted_at` is before `before` (every one when
    None), except points whose `chunk_id` is in `keep_chunk_ids` (the tombstones that fence versions)."""

    before: datetime | None = None
    keep_chunk_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexHit:
    """A point read back: its score (0 for listings), payload and, when asked for, its vectors."""

    id: str
    score: float
    payload: Payload
    dense: list[float] | None = None
    sparse: SparseVector | None = None


class VectorIndex(Protocol):
    """A vector index with collections and aliases; every write is durable and visible when it returns."""

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection with its payload indexes, or check that the existing one matches."""

    def collection_exists(self, name: str) -> bool:
        """Whether a collection (not an alias) of this name exists."""

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""

    def drop_collection(self, name: str) -> None:
        """Delete a collection and the aliases that point at it; missing is not an error."""

    def resolve_alias(self, alias: str) -> str | None:
        """The collection an alias points at, or None."""

    def switch_alias(self, alias: str, collection: str) -> None:
        """Create the alias or move it to `collection`, atomically for readers."""

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        """Insert or replace points by id."""

    def set_payload(self, collection: str, ids: list[str], payload: Payload) -> None:
        """Merge `payload` into the payload of each point."""

    def delete_points(self, collection: str, ids: list[str]) -> None:
        """Hard-delete points (compaction only; the pipeline soft-deletes)."""

    def count_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Exact number of soft-deleted points in `scope`."""

    def purge_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Hard-delete the soft-deleted points in `scope` in one engine operation that checks the condition
        as it applies, so a point written live meanwhile stays; returns how many matched (exact where this
        adapter serialises the engine's writes, else counted just before: an upper bound)."""

    def index_metadata(self, collection: str, key: str, kind: MetadataIndexKind) -> None:
        """Index `metadata.<key>` as `kind` (idempotent): filters on it read the index, not each payload."""

    def search(
        self,
        collection: str,
        *,
        using: VectorName,
        vector: list[float] | SparseVector,
        filter: IndexFilter,
        limit: int,
    ) -> list[IndexHit]:
        """Nearest points by the named vector among those the filter lets through, best first."""

    def scroll(
        self, collection: str, *, filter: IndexFilter, limit: int, with_vectors: bool = False
    ) -> list[IndexHit]:
        """Up to `limit` points the filter lets through, ordered by id."""

    def count(self, collection: str, filter: IndexFilter) -> int:
        """Exact number of points the filter lets through."""

    def document_points(self, collection: str, tenant: str, document_id: str) -> list[IndexHit]:
        """Every point of a document, live or soft-deleted, payload only."""

    def size(self, collection: str) -> int:
        """Exact number of points of every tenant and state."""

    def scan(self, collection: str, *, after: str | None, limit: int) -> tuple[list[IndexHit], str | None]:
        """Up to `limit` points of every tenant and state, with vectors, ordered by id from `after`
        (inclusive; None: the start), and the id to continue from (None: the end). For whole-collection
        copies such as a model migration's backfill."""

    def flush(self) -> None:
        """Make every write so far survive power loss, not only a process crash (once per batch)."""
        ...

    def close(self) -> None:
        """Release files and connections."""
