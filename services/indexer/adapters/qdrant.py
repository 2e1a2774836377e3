"""`VectorIndex` on qdrant-client: a Qdrant server in production, local mode (`:memory:`/`path=`) in tests.

Every write passes `wait=True`: an `acknowledged` write is neither durable nor visible yet.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from schemas import SparseVector
from services.indexer.adapters._common import DOCUMENT_PAGE, check_metadata_key, check_name, metadata_key
from services.indexer.adapters.qdrant_filters import build_deleted_filter, build_filter
from services.indexer.errors import CollectionNotFound, IndexConfigError, IndexerError, IndexUnavailable
from services.indexer.ports import (
    DENSE,
    INDEXED_FIELDS,
    INTEGER_FIELDS,
    SPARSE,
    CollectionSpec,
    DeletedScope,
    IndexFilter,
    IndexHit,
    IndexPoint,
    MetadataIndexKind,
    Payload,
    VectorName,
)

_DISTANCES = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "euclid": models.Distance.EUCLID}


@contextmanager
def _translated(collection: str | None = None) -> Iterator[None]:
    """Map qdrant-client and transport errors to indexer errors at the boundary."""
    try:
        yield
    except IndexerError:
        raise
    except UnexpectedResponse as exc:
        if exc.status_code == 404:
            raise CollectionNotFound(collection or str(exc)) from exc
        raise IndexUnavailable(str(exc)) from exc
    except (ResponseHandlingException, httpx.HTTPError, ConnectionError, TimeoutError) as exc:
        raise IndexUnavailable(str(exc)) from exc
    except ValueError as exc:
        # Local mode reports a missing collection as ValueError("Collection x not found").
        if "not found" in str(exc):
            raise CollectionNotFound(collection or str(exc)) from exc
        raise


class QdrantIndex:
    """Collections, real aliases and filters on a Qdrant client the caller owns the creation of."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection with its payload indexes, or check that the existing one matches."""
        name = check_name(spec.name)
        with _translated(name):
            if self.resolve_alias(name) is not None:
                raise IndexConfigError(f"{name!r} is an alias")
            if self._client.collection_exists(name):
                self._check_spec(spec)
                return
            self._client.create_collection(
                name,
                vectors_config={
                    DENSE: models.VectorParams(size=spec.dense_dim, distance=_DISTANCES[spec.distance])
                },
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            with warnings.catch_warnings():
                # Local mode warns that payload indexes have no effect there; the server uses them.
                warnings.simplefilter("ignore")
                for field in INDEXED_FIELDS:
                    schema: Any
                    if field == "tenant":
                        schema = models.KeywordIndexParams(
                            type=models.KeywordIndexType.KEYWORD, is_tenant=True
                        )
                    elif field in INTEGER_FIELDS:
                        schema = models.PayloadSchemaType.INTEGER
                    else:
                        schema = models.PayloadSchemaType.KEYWORD
                    self._client.create_payload_index(name, field, field_schema=schema, wait=True)

    def collection_exists(self, name: str) -> bool:
        """Whether a collection (not an alias) of this name exists."""
        with _translated(name):
            return name in self.list_collections()

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        with _translated():
            return sorted(c.name for c in self._client.get_collections().collections)

    def drop_collection(self, name: str) -> None:
        """Delete the collection; Qdrant removes its aliases with it."""
        with _translated(name):
            aliases = [a.alias_name for a in self._aliases() if a.collection_name == name]
            if aliases:
                self._client.update_collection_aliases(
                    change_aliases_operations=[
                        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a))
                        for a in aliases
                    ]
                )
            self._client.delete_collection(name)

    def resolve_alias(self, alias: str) -> str | None:
        """The collection an alias points at, or None."""
        with _translated():
            return next((a.collection_name for a in self._aliases() if a.alias_name == alias), None)

    def switch_alias(self, alias: str, collection: str) -> None:
        """Create or move the alias in one aliases request, which Qdrant applies atomically."""
        check_name(alias)
        with _translated(collection):
            if not self.collection_exists(collection):
                raise CollectionNotFound(collection)
            if self.collection_exists(alias):
                raise IndexConfigError(f"{alias!r} is a collection")
            actions: list[Any] = []
            if self.resolve_alias(alias) is not None:
                actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
            actions.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
                )
            )
            self._client.update_collection_aliases(change_aliases_operations=actions)

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        """Insert or replace points; returns once applied."""
        if not points:
            return
        structs = [models.PointStruct(id=p.id, vector=_vectors(p), payload=p.payload) for p in points]
        with _translated(collection):
            self._client.upsert(collection, points=structs, wait=True)

    def set_payload(self, collection: str, ids: list[str], payload: Payload) -> None:
        """Merge payload keys into the given points."""
        if ids:
            with _translated(collection):
                self._client.set_payload(collection, payload=payload, points=list(ids), wait=True)

    def delete_points(self, collection: str, ids: list[str]) -> None:
        """Hard-delete points."""
        if ids:
            with _translated(collection):
                self._client.delete(
                    collection, points_selector=models.PointIdsList(points=list(ids)), wait=True
                )

    def count_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Exact number of soft-deleted points in scope."""
        with _translated(collection):
            return self._client.count(collection, count_filter=build_deleted_filter(scope), exact=True).count

    def purge_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Hard-delete by filter: Qdrant evaluates the filter when it applies the delete, in the shard's
        update order, so a point written live before then stays. The count is taken just before."""
        found = self.count_deleted(collection, scope)
        if found:
            selector = models.FilterSelector(filter=build_deleted_filter(scope))
            with _translated(collection):
                self._client.delete(collection, points_selector=selector, wait=True)
        return found

    def index_metadata(self, collection: str, key: str, kind: MetadataIndexKind) -> None:
        """Create (or replace) the payload index on `metadata.<key>`; the server answers filters from it."""
        check_metadata_key(key)
        with _translated(collection), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode warns that payload indexes have no effect there
            self._client.create_payload_index(
                collection, metadata_key(key), field_schema=models.PayloadSchemaType(kind), wait=True
            )

    def search(
        self,
        collection: str,
        *,
        using: VectorName,
        vector: list[float] | SparseVector,
        filter: IndexFilter,
        limit: int,
    ) -> list[IndexHit]:
        """Nearest points by the named vector, best first."""
        query_filter = build_filter(filter)
        if query_filter is None or (isinstance(vector, SparseVector) and not vector.indices):
            return []
        query: Any = (
            models.SparseVector(indices=list(vector.indices), values=list(vector.values))
            if isinstance(vector, SparseVector)
            else list(vector)
        )
        with _translated(collection):
            response = self._client.query_points(
                collection,
                query=query,
                using=using,
                query_filter=query_filter,
                limit=limit,
                with_payload=True,
            )
        return [IndexHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def scroll(
        self, collection: str, *, filter: IndexFilter, limit: int, with_vectors: bool = False
    ) -> list[IndexHit]:
        """Matching points ordered by id."""
        return list(self._scroll(collection, filter, limit=limit, with_vectors=with_vectors))

    def count(self, collection: str, filter: IndexFilter) -> int:
        """Exact number of matching points."""
        count_filter = build_filter(filter)
        if count_filter is None:
            return 0
        with _translated(collection):
            return self._client.count(collection, count_filter=count_filter, exact=True).count

    def document_points(self, collection: str, tenant: str, document_id: str) -> list[IndexHit]:
        """Every point of a document, live or soft-deleted."""
        scope = IndexFilter(tenant=tenant, document_ids=[document_id], include_deleted=True)
        return list(self._scroll(collection, scope, limit=None, with_vectors=False))

    def size(self, collection: str) -> int:
        with _translated(collection):
            return self._client.count(collection, exact=True).count

    def scan(self, collection: str, *, after: str | None, limit: int) -> tuple[list[IndexHit], str | None]:
        """Every point from `after` on, ordered by id, with vectors; and where the next page starts."""
        with _translated(collection):
            records, offset = self._client.scroll(
                collection, limit=limit, offset=after, with_payload=True, with_vectors=True
            )
        return [_hit(r, True) for r in records], (str(offset) if offset is not None else None)

    def flush(self) -> None:
        """Nothing to do: every write is already applied when it returns."""

    def close(self) -> None:
        """Close the client (and release a local-mode path)."""
        with _translated():
            self._client.close()

    def _aliases(self) -> list[models.AliasDescription]:
        return list(self._client.get_aliases().aliases)

    def _check_spec(self, spec: CollectionSpec) -> None:
        params = self._client.get_collection(spec.name).config.params
        vectors = params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if dense is None or dense.size != spec.dense_dim or dense.distance != _DISTANCES[spec.distance]:
            raise IndexConfigError(f"collection {spec.name!r} exists with other vectors: {vectors}")

    def _scroll(
        self, collection: str, scope: IndexFilter, *, limit: int | None, with_vectors: bool
    ) -> Iterator[IndexHit]:
        scroll_filter = build_filter(scope)
        if scroll_filter is None:
            return
        offset: Any = None
        remaining = limit
        while remaining is None or remaining > 0:
            page = DOCUMENT_PAGE if remaining is None else min(remaining, DOCUMENT_PAGE)
            with _translated(collection):
                records, offset = self._client.scroll(
                    collection,
                    scroll_filter=scroll_filter,
                    limit=page,
                    offset=offset,
                    with_payload=True,
                    with_vectors=with_vectors,
                )
            for r in records:
                yield _hit(r, with_vectors)
            if remaining is not None:
                remaining -= len(records)
            if offset is None or not records:
                return


def _vectors(p: IndexPoint) -> dict[str, Any]:
    vectors: dict[str, Any] = {}
    if p.dense is not None:
        vectors[DENSE] = list(p.dense)
    if p.sparse is not None:
        vectors[SPARSE] = models.SparseVector(indices=list(p.sparse.indices), values=list(p.sparse.values))
    return vectors


def _hit(record: models.Record, with_vectors: bool) -> IndexHit:
    dense: list[float] | None = None
    sparse: SparseVector | None = None
    if with_vectors and isinstance(record.vector, dict):
        raw_dense = record.vector.get(DENSE)
        raw_sparse = record.vector.get(SPARSE)
        if isinstance(raw_dense, list):
            dense = [float(x) for x in raw_dense]  # type: ignore[arg-type]
        if isinstance(raw_sparse, models.SparseVector):
            sparse = SparseVector(indices=list(raw_sparse.indices), values=list(raw_sparse.values))
    return IndexHit(str(record.id), 0.0, dict(record.payload or {}), dense, sparse)
