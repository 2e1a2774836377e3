"""Translation of the neutral `IndexFilter` into qdrant-edge filters, and the boolean-metadata workaround.

qdrant-edge-py 0.9.0 never matches `MatchValue(True)` or `MatchValue(False)` against boolean payloads, so
boolean metadata values are also written as 0/1 under a shadow key that filters use and reads strip.
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from schemas import MatchFilter
from services.indexer.adapters._common import metadata_key, utc_iso
from services.indexer.ports import DELETED, LIVE, DeletedScope, IndexFilter, Payload

BOOL_SHADOW = "_metadata_bool"


def with_bool_shadow(payload: Payload) -> Payload:
    """The payload plus 0/1 copies of its boolean metadata values, when it carries metadata."""
    metadata = payload.get("metadata")
    if not isinstance(metadata, dict):
        return payload
    shadow = {k: int(v) for k, v in metadata.items() if isinstance(v, bool)}
    return {**payload, BOOL_SHADOW: shadow}


def build_filter(f: IndexFilter) -> qe.Filter | None:
    """The edge filter, or None when the scope can match nothing (an empty id or `any` list)."""
    must: list[Any] = [qe.FieldCondition("tenant", match=qe.MatchValue(f.tenant))]
    if not f.include_deleted:
        must.append(qe.FieldCondition("state", match=qe.MatchValue(LIVE)))
    if f.acl_any is not None:
        public = qe.IsEmptyCondition("acl")
        if f.acl_any:
            must.append(
                qe.Filter(should=[public, qe.FieldCondition("acl", match=qe.MatchAny(list(f.acl_any)))])
            )
        else:
            must.append(public)
    if f.document_ids is not None:
        if not f.document_ids:
            return None
        must.append(qe.FieldCondition("document_id", match=qe.MatchAny(list(f.document_ids))))
    if f.point_ids is not None:
        if not f.point_ids:
            return None
        must.append(qe.HasIdCondition(set(f.point_ids)))
    for m in f.match:
        condition = _match(m)
        if condition is None:
            return None
        must.append(condition)
    for r in f.range:
        must.append(
            qe.FieldCondition(
                metadata_key(r.key), range=qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
            )
        )
    for d in f.date_range:
        bounds = {"gte": utc_iso(d.gte), "gt": utc_iso(d.gt), "lte": utc_iso(d.lte), "lt": utc_iso(d.lt)}
        must.append(qe.FieldCondition(metadata_key(d.key), range=qe.RangeDateTime(**bounds)))
    return qe.Filter(must=must)


def build_deleted_filter(scope: DeletedScope) -> qe.Filter:
    """Soft-deleted points across tenants, deleted before the scope's moment, minus the kept chunk ids."""
    must: list[Any] = [qe.FieldCondition("state", match=qe.MatchValue(DELETED))]
    if scope.before is not None:
        # `deleted_at` is an ISO 8601 string; the datetime range parses it, offset and fraction included.
        must.append(qe.FieldCondition("deleted_at", range=qe.RangeDateTime(lt=utc_iso(scope.before))))
    must_not: list[Any] = []
    if scope.keep_chunk_ids:
        must_not.append(qe.FieldCondition("chunk_id", match=qe.MatchAny(list(scope.keep_chunk_ids))))
    return qe.Filter(must=must, must_not=must_not)


def _match(m: MatchFilter) -> Any:
    key = metadata_key(m.key)
    if m.any is not None:
        strings = [v for v in m.any if isinstance(v, str)]
        ints = [v for v in m.any if isinstance(v, int)]
        options: list[Any] = [qe.FieldCondition(key, match=qe.MatchAny(vs)) for vs in (strings, ints) if vs]
        return qe.Filter(should=options) if options else None
    if m.value is None:
        return qe.IsEmptyCondition(key)
    values = m.value if isinstance(m.value, list) else [m.value]
    return qe.Filter(must=[_equals(m.key, v) for v in values])


def _equals(key: str, value: str | int | float | bool) -> Any:
    if isinstance(value, bool):
        return qe.FieldCondition(f"{BOOL_SHADOW}.{key}", match=qe.MatchValue(int(value)))
    if isinstance(value, str):
        return qe.FieldCondition(metadata_key(key), match=qe.MatchValue(value))
    # Numbers compare as numbers whether stored as 3 or 3.0; MatchValue would miss one of them.
    return qe.FieldCondition(metadata_key(key), range=qe.RangeFloat(gte=value, lte=value))
