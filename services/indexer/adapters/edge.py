"""`VectorIndex` on qdrant-edge: one in-process shard per collection directory, aliases in a JSON file.

Layout: `root/collections/<name>/shard/` (the shard), `root/collections/<name>/spec.json` (written last,
so a half-created collection is finished by the next `ensure_collection`), `root/aliases.json`.

Durability: a write is in the shard's WAL when `update` returns, which survives a killed process (tested);
surviving power loss needs an fsync, `flush_each_write=True` or `flush()`, measured at 10-350 ms here.

Threads: the engine is internally synchronised (reads during writes were exercised under load without
errors), but qdrant-edge-py 0.9.0 holds the GIL through a whole query (a 1 ms ticker thread ran 41 times
during 540 ms of queries; `query_batch` is no faster than one query after another), so concurrent searches
take turns: more threads add no throughput. Writes, the shard cache and the alias map are serialised by
one lock so that close() never races a write. Upserts hold the GIL for most of their run, and
`EdgeShard.optimize()` (HNSW build) holds it throughout (213 s for 100k chunks here): it stalls the whole
process, so this adapter never calls it, and searches scan each segment's filtered points.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from schemas import SparseVector
from services.indexer.adapters._common import DOCUMENT_PAGE, check_metadata_key, check_name, metadata_key
from services.indexer.adapters.edge_filters import (
    BOOL_SHADOW,
    build_deleted_filter,
    build_filter,
    with_bool_shadow,
)
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

_DISTANCES = {"cosine": qe.Distance.Cosine, "dot": qe.Distance.Dot, "euclid": qe.Distance.Euclid}
_METADATA_INDEXES: dict[str, Any] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.IntegerIndexParams(lookup=True, range=True),  # equality filters on numbers use ranges
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.IntegerIndexParams(lookup=True, range=True),  # the 0/1 shadow of a boolean
    "datetime": qe.PayloadSchemaType.Datetime,
}


@contextmanager
def _translated() -> Iterator[None]:
    """Edge raises bare `Exception` for runtime failures; callers only ever see indexer errors."""
    try:
        yield
    except (IndexerError, TypeError, AssertionError):
        raise
    except Exception as exc:
        raise IndexUnavailable(str(exc)) from exc


class EdgeIndex:
    """Collections as edge shards under `root_dir`; one process per directory (the WAL is locked)."""

    def __init__(self, root_dir: Path | str, *, flush_each_write: bool = False) -> None:
        self._root = Path(root_dir)
        self._collections = self._root / "collections"
        self._collections.mkdir(parents=True, exist_ok=True)
        self._flush = flush_each_write
        self._lock = threading.RLock()
        self._shards: dict[str, qe.EdgeShard] = {}
        self._aliases: dict[str, str] = self._load_aliases()

    # -- collections and aliases -------------------------------------------------------------------

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the shard with its payload indexes, or check that the existing one matches."""
        with self._lock, _translated():
            name = check_name(spec.name)
            if name in self._aliases:
                raise IndexConfigError(f"{name!r} is an alias")
            spec_file = self._collections / name / "spec.json"
            wanted = {"dense_dim": spec.dense_dim, "distance": spec.distance}
            if spec_file.exists():
                found = json.loads(spec_file.read_text())
                if found != wanted:
                    raise IndexConfigError(f"collection {name!r} exists as {found}")
                return
            shard_dir = self._collections / name / "shard"
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=spec.dense_dim, distance=_DISTANCES[spec.distance])},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            # A crash during creation leaves a shard without spec.json: load and finish it.
            shard = (
                qe.EdgeShard.load(str(shard_dir), config)
                if shard_dir.exists()
                else qe.EdgeShard.create(str(shard_dir), config)
            )
            for field in INDEXED_FIELDS:
                if field == "tenant":
                    schema: Any = qe.KeywordIndexParams(is_tenant=True)
                elif field in INTEGER_FIELDS:
                    schema = qe.PayloadSchemaType.Integer
                else:
                    schema = qe.PayloadSchemaType.Keyword
                shard.update(qe.UpdateOperation.create_field_index(field, schema))
            shard.flush()
            self._shards[name] = shard
            _atomic_write(spec_file, json.dumps(wanted))

    def collection_exists(self, name: str) -> bool:
        """Whether a fully created collection of this name exists."""
        return check_name(name) == name and (self._collections / name / "spec.json").exists()

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        return sorted(p.parent.name for p in self._collections.glob("*/spec.json"))

    def drop_collection(self, name: str) -> None:
        """Close and delete the shard, and remove aliases pointing at it."""
        with self._lock, _translated():
            check_name(name)
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            remaining = {a: c for a, c in self._aliases.items() if c != name}
            if remaining != self._aliases:
                self._save_aliases(remaining)
            directory = self._collections / name
            if directory.exists():
                # Move out of sight in one rename so a crash mid-delete never leaves a half collection behind.
                trash = self._root / "trash" / f"{name}-{uuid.uuid4().hex}"
                trash.parent.mkdir(exist_ok=True)
                os.replace(directory, trash)
                shutil.rmtree(trash)

    def resolve_alias(self, alias: str) -> str | None:
        """The collection an alias points at, or None."""
        return self._aliases.get(alias)

    def switch_alias(self, alias: str, collection: str) -> None:
        """Point the alias at `collection`; readers see the old or the new target, never neither."""
        with self._lock:
            check_name(alias)
            if not self.collection_exists(collection):
                raise CollectionNotFound(collection)
            if self.collection_exists(alias):
                raise IndexConfigError(f"{alias!r} is a collection")
            self._save_aliases({**self._aliases, alias: collection})

    # -- writes --------------------------------------------------------------------------------------

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        """Insert or replace points in one WAL operation."""
        if not points:
            return
        edge_points = [qe.Point(p.id, _vectors(p), with_bool_shadow(p.payload)) for p in points]
        self._write(collection, qe.UpdateOperation.upsert_points(edge_points))

    def set_payload(self, collection: str, ids: list[str], payload: Payload) -> None:
        """Merge payload keys into the given points."""
        if ids:
            self._write(collection, qe.UpdateOperation.set_payload(list(ids), with_bool_shadow(payload)))

    def delete_points(self, collection: str, ids: list[str]) -> None:
        """Hard-delete points."""
        if ids:
            self._write(collection, qe.UpdateOperation.delete_points(list(ids)))

    def count_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Exact number of soft-deleted points in scope."""
        shard = self._shard(collection)
        with _translated():
            return int(shard.count(qe.CountRequest(exact=True, filter=build_deleted_filter(scope))))

    def purge_deleted(self, collection: str, scope: DeletedScope) -> int:
        """Hard-delete by filter; the count is exact because every write to the shard takes this lock."""
        with self._lock, _translated():
            found = self.count_deleted(collection, scope)
            if found:
                shard = self._shard(collection)
                shard.update(qe.UpdateOperation.delete_points_by_filter(build_deleted_filter(scope)))
                if self._flush:
                    shard.flush()
            return found

    def index_metadata(self, collection: str, key: str, kind: MetadataIndexKind) -> None:
        """Index `metadata.<key>` (a boolean: its 0/1 shadow, which filters read). Without an index, a
        filter on the key deserialises each candidate's whole payload: about ten times slower at 100k
        chunks. Creating an index that exists is a no-op; another kind replaces it."""
        check_metadata_key(key)
        path = f"{BOOL_SHADOW}.{key}" if kind == "bool" else metadata_key(key)
        self._write(collection, qe.UpdateOperation.create_field_index(path, _METADATA_INDEXES[kind]))

    # -- reads ---------------------------------------------------------------------------------------

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
        shard = self._shard(collection)
        edge_filter = build_filter(filter)
        if edge_filter is None or (isinstance(vector, SparseVector) and not vector.indices):
            return []
        query: Any = (
            qe.SparseVector(list(vector.indices), list(vector.values))
            if isinstance(vector, SparseVector)
            else list(vector)
        )
        request = qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(query, using=using), filter=edge_filter, with_payload=True
        )
        with _translated():
            found = shard.query(request)
        return [IndexHit(str(p.id), float(p.score), _payload(p.payload)) for p in found]

    def scroll(
        self, collection: str, *, filter: IndexFilter, limit: int, with_vectors: bool = False
    ) -> list[IndexHit]:
        """Matching points ordered by id."""
        return list(self._scroll(collection, filter, limit=limit, with_vectors=with_vectors))

    def count(self, collection: str, filter: IndexFilter) -> int:
        """Exact number of matching points."""
        shard = self._shard(collection)
        edge_filter = build_filter(filter)
        if edge_filter is None:
            return 0
        with _translated():
            return int(shard.count(qe.CountRequest(exact=True, filter=edge_filter)))

    def document_points(self, collection: str, tenant: str, document_id: str) -> list[IndexHit]:
        """Every point of a document, live or soft-deleted."""
        scope = IndexFilter(tenant=tenant, document_ids=[document_id], include_deleted=True)
        return list(self._scroll(collection, scope, limit=None, with_vectors=False))

    def size(self, collection: str) -> int:
        shard = self._shard(collection)
        with _translated():
            return int(shard.count(qe.CountRequest(exact=True)))

    def scan(self, collection: str, *, after: str | None, limit: int) -> tuple[list[IndexHit], str | None]:
        """Every point from `after` on, ordered by id, with vectors; and where the next page starts."""
        shard = self._shard(collection)
        request = qe.ScrollRequest(
            offset=after, limit=limit, filter=None, with_payload=True, with_vector=True
        )
        with _translated():
            records, offset = shard.scroll(request)
        return [_hit(r, True) for r in records], (str(offset) if offset is not None else None)

    def flush(self) -> None:
        """Fsync every open shard, e.g. once per batch before committing offsets, to survive power loss."""
        with self._lock, _translated():
            for shard in self._shards.values():
                shard.flush()

    def close(self) -> None:
        """Flush and close every open shard."""
        with self._lock, _translated():
            shards, self._shards = self._shards, {}
            for shard in shards.values():
                shard.flush()
                shard.close()

    # -- internals -----------------------------------------------------------------------------------

    def _shard(self, name: str) -> qe.EdgeShard:
        """The open shard of a collection or alias, resolved per call so an alias switch applies at once."""
        target = self._aliases.get(name, name)
        shard = self._shards.get(target)
        if shard is not None:
            return shard
        with self._lock, _translated():
            if target in self._shards:
                return self._shards[target]
            if not self.collection_exists(target):
                raise CollectionNotFound(name)
            shard = qe.EdgeShard.load(str(self._collections / target / "shard"))
            self._shards[target] = shard
            return shard

    def _write(self, collection: str, operation: qe.UpdateOperation) -> None:
        with self._lock, _translated():
            shard = self._shard(collection)
            shard.update(operation)
            if self._flush:
                shard.flush()

    def _scroll(
        self, collection: str, scope: IndexFilter, *, limit: int | None, with_vectors: bool
    ) -> Iterator[IndexHit]:
        shard = self._shard(collection)
        edge_filter = build_filter(scope)
        if edge_filter is None:
            return
        offset: Any = None
        remaining = limit
        while remaining is None or remaining > 0:
            page = DOCUMENT_PAGE if remaining is None else min(remaining, DOCUMENT_PAGE)
            request = qe.ScrollRequest(
                offset=offset, limit=page, filter=edge_filter, with_payload=True, with_vector=with_vectors
            )
            with _translated():
                records, offset = shard.scroll(request)
            for r in records:
                yield _hit(r, with_vectors)
            if remaining is not None:
                remaining -= len(records)
            if offset is None or not records:
                return

    def _load_aliases(self) -> dict[str, str]:
        path = self._root / "aliases.json"
        if not path.exists():
            return {}
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded

    def _save_aliases(self, aliases: dict[str, str]) -> None:
        # Durable first, then visible: a reader never resolves an alias that a crash would undo.
        _atomic_write(self._root / "aliases.json", json.dumps(aliases, sort_keys=True))
        self._aliases = aliases


def _vectors(p: IndexPoint) -> dict[str, Any]:
    vectors: dict[str, Any] = {}
    if p.dense is not None:
        vectors[DENSE] = list(p.dense)
    if p.sparse is not None:
        vectors[SPARSE] = qe.SparseVector(list(p.sparse.indices), list(p.sparse.values))
    return vectors


def _payload(raw: Payload | None) -> Payload:
    payload = dict(raw or {})
    payload.pop(BOOL_SHADOW, None)
    return payload


def _hit(record: Any, with_vectors: bool) -> IndexHit:
    dense: list[float] | None = None
    sparse: SparseVector | None = None
    if with_vectors and isinstance(record.vector, dict):
        raw_dense = record.vector.get(DENSE)
        raw_sparse = record.vector.get(SPARSE)
        dense = [float(x) for x in raw_dense] if raw_dense is not None else None
        if raw_sparse is not None:
            sparse = SparseVector(
                indices=list(raw_sparse.indices), values=[float(x) for x in raw_sparse.values]
            )
    return IndexHit(str(record.id), 0.0, _payload(record.payload), dense, sparse)


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file, fsync, rename and fsync the directory, so the file is old or new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
