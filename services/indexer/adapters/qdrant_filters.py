"""Translation of the neutral `IndexFilter` into qdrant-client filter models."""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from schemas import MatchFilter
from services.indexer.adapters._common import as_utc, metadata_key
from services.indexer.ports import DELETED, LIVE, DeletedScope, IndexFilter


def build_filter(f: IndexFilter) -> models.Filter | None:
    """The Qdrant filter, or None when the scope can match nothing (an empty id or `any` list)."""
    must: list[Any] = [models.FieldCondition(key="tenant", match=models.MatchValue(value=f.tenant))]
    if not f.include_deleted:
        must.append(models.FieldCondition(key="state", match=models.MatchValue(value=LIVE)))
    if f.acl_any is not None:
        public = models.IsEmptyCondition(is_empty=models.PayloadField(key="acl"))
        if f.acl_any:
            shared = models.FieldCondition(key="acl", match=models.MatchAny(any=list(f.acl_any)))
            must.append(models.Filter(should=[public, shared]))
        else:
            must.append(public)
    if f.document_ids is not None:
        if not f.document_ids:
            return None
        must.append(models.FieldCondition(key="document_id", match=models.MatchAny(any=list(f.document_ids))))
    if f.point_ids is not None:
        if not f.point_ids:
            return None
        must.append(models.HasIdCondition(has_id=list(f.point_ids)))
    for m in f.match:
        condition = _match(m)
        if condition is None:
            return None
        must.append(condition)
    for r in f.range:
        must.append(
            models.FieldCondition(
                key=metadata_key(r.key), range=models.Range(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
            )
        )
    for d in f.date_range:
        bounds = models.DatetimeRange(gte=as_utc(d.gte), gt=as_utc(d.gt), lte=as_utc(d.lte), lt=as_utc(d.lt))
        must.append(models.FieldCondition(key=metadata_key(d.key), range=bounds))
    return models.Filter(must=must)


def build_deleted_filter(scope: DeletedScope) -> models.Filter:
    """Soft-deleted points across tenants, deleted before the scope's moment, minus the kept chunk ids."""
    must: list[Any] = [models.FieldCondition(key="state", match=models.MatchValue(value=DELETED))]
    if scope.before is not None:
        # `deleted_at` is an ISO 8601 string; the datetime range parses it, offset and fraction included.
        bounds = models.DatetimeRange(lt=as_utc(scope.before))
        must.append(models.FieldCondition(key="deleted_at", range=bounds))
    must_not: list[Any] = []
    if scope.keep_chunk_ids:
        kept = models.MatchAny(any=list(scope.keep_chunk_ids))
        must_not.append(models.FieldCondition(key="chunk_id", match=kept))
    return models.Filter(must=must, must_not=must_not or None)


def _match(m: MatchFilter) -> Any:
    key = metadata_key(m.key)
    if m.any is not None:
        strings = [v for v in m.any if isinstance(v, str)]
        ints = [v for v in m.any if isinstance(v, int)]
        options: list[Any] = [
            models.FieldCondition(key=key, match=models.MatchAny(any=vs)) for vs in (strings, ints) if vs
        ]
        return models.Filter(should=options) if options else None
    if m.value is None:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    values = m.value if isinstance(m.value, list) else [m.value]
    return models.Filter(must=[_equals(key, v) for v in values])


def _equals(key: str, value: str | int | float | bool) -> Any:
    if isinstance(value, bool | str):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    # Numbers compare as numbers whether stored as 3 or 3.0, the same as the edge adapter.
    return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
