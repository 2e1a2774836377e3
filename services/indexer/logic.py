"""Pure indexing logic: point ids, chunk payloads and version fencing. No I/O.

Fencing reads the document's points from the index itself rather than a second store (a version table):
the index is the only state the decision protects, so there is nothing to get out of sync and no two-store
transaction to lose in a crash. The fence of a document is the highest `doc_version` or
`deleted_by_version` among its points, live or soft-deleted; a delete always leaves a vectorless
tombstone point (so does an upsert with no chunks) so the fence survives even when no chunk does.

Compaction (`compaction`) hard-deletes soft-deleted points. If it removed every point of a deleted document,
the fence would be gone and a replay of an older upsert would resurrect the document, so it keeps each
document's tombstone (the newest deleted marker) and drops only chunks: a superseded chunk's
`deleted_by_version` is the `doc_version` of the live chunks that replaced it, or a tombstone's version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas import ChangeOp, ChunksEnriched
from services.indexer.ports import DELETED, LIVE, IndexHit, IndexPoint, Payload, point_id

TOMBSTONE_CHUNK = "#tombstone"

PlanStatus = Literal["apply", "stale", "noop"]


def tombstone_id(*, tenant: str, document_id: str) -> str:
    """Id of the vectorless marker a delete leaves behind to keep the document's fence."""
    return point_id(tenant=tenant, document_id=document_id, chunk_id=TOMBSTONE_CHUNK)


def chunk_points(event: ChunksEnriched, *, now: datetime) -> list[IndexPoint]:
    """The points of an upsert event, one per chunk, with their payload."""
    entities = {e.chunk_id: e.entity_ids for e in event.entities}
    points = []
    for chunk, vectors in zip(event.chunks, event.vectors, strict=True):
        payload: Payload = {
            "tenant": event.tenant,
            "document_id": event.document_id,
            "doc_version": event.version,
            "chunk_id": chunk.chunk_id,
            "position": chunk.position,
            "text": chunk.text,
            "title": event.title,
            "headings": list(chunk.headings),
            "content_hash": chunk.content_hash,
            "source": {"kind": event.source.kind.value, "name": event.source.name},
            "metadata": dict(event.metadata),
            "acl": list(event.acl),
            "entity_ids": list(entities.get(chunk.chunk_id, [])),
            "model": event.model,
            "state": LIVE,
            "deleted_at": None,
            "deleted_by_version": None,
            "indexed_at": now.isoformat(),
            "occurred_at": event.occurred_at.isoformat(),
        }
        pid = point_id(tenant=event.tenant, document_id=event.document_id, chunk_id=chunk.chunk_id)
        points.append(IndexPoint(id=pid, dense=list(vectors.dense), sparse=vectors.sparse, payload=payload))
    return points


def tombstone_point(event: ChunksEnriched, *, now: datetime) -> IndexPoint:
    """The marker a delete writes: no vectors, state deleted, carrying the delete's version."""
    payload: Payload = {
        "tenant": event.tenant,
        "document_id": event.document_id,
        "doc_version": None,
        "chunk_id": TOMBSTONE_CHUNK,
        "acl": [],
        "entity_ids": [],
        "metadata": {},
        "state": DELETED,
        "deleted_at": now.isoformat(),
        "deleted_by_version": event.version,
        "indexed_at": now.isoformat(),
        "occurred_at": event.occurred_at.isoformat(),
    }
    return IndexPoint(
        id=tombstone_id(tenant=event.tenant, document_id=event.document_id),
        dense=None,
        sparse=None,
        payload=payload,
    )


def fence(existing: list[IndexHit]) -> int | None:
    """Highest version the index has seen for a document, from live chunks or deletion markers."""
    versions = [
        v
        for hit in existing
        for v in (hit.payload.get("doc_version"), hit.payload.get("deleted_by_version"))
        if isinstance(v, int)
    ]
    return max(versions, default=None)


@dataclass(frozen=True, slots=True)
class WritePlan:
    """What to write for one event, in order: `upserts` first, then `soft_deletes`."""

    status: PlanStatus
    reason: str
    fence: int | None
    upserts: list[IndexPoint] = field(default_factory=list)
    soft_deletes: list[str] = field(default_factory=list)
    soft_delete_payload: Payload = field(default_factory=dict)


def plan_write(event: ChunksEnriched, existing: list[IndexHit], now: datetime) -> WritePlan:
    """Decide the writes for an event given every current point of its document (live or deleted)."""
    v = event.version
    current = fence(existing)
    if current is not None and v < current:
        return WritePlan(
            status="stale", reason=f"version {v} is older than the index's {current}", fence=current
        )
    live = [h for h in existing if h.payload.get("state") == LIVE]
    marker: Payload = {"state": DELETED, "deleted_at": now.isoformat(), "deleted_by_version": v}
    if event.op is ChangeOp.DELETE or not event.chunks:
        # An upsert without chunks shows nothing, like a delete, and must leave a fence just the same.
        return _plan_delete(event, existing, live, current, marker, now)
    new_points = chunk_points(event, now=now)
    new_ids = {p.id for p in new_points}
    if current is not None and v == current:
        live_at_v = {h.id for h in live if h.payload.get("doc_version") == v}
        if not live_at_v and any(h.payload.get("deleted_by_version") == v for h in existing):
            # A delete with the same version got here first; deletes win ties so the order never matters.
            return WritePlan(
                status="stale", reason=f"version {v} was deleted at the same version", fence=current
            )
        upserts = [p for p in new_points if p.id not in live_at_v]
    else:
        upserts = new_points
    superseded = [h.id for h in live if h.id not in new_ids and h.payload.get("doc_version") != v]
    if not upserts and not superseded:
        return WritePlan(status="noop", reason=f"version {v} is already indexed", fence=current)
    return WritePlan(
        status="apply",
        reason=f"upsert version {v}",
        fence=current,
        upserts=upserts,
        soft_deletes=superseded,
        soft_delete_payload=marker,
    )


def _plan_delete(
    event: ChunksEnriched,
    existing: list[IndexHit],
    live: list[IndexHit],
    current: int | None,
    marker: Payload,
    now: datetime,
) -> WritePlan:
    """A delete soft-deletes every live point (deletes win ties) and leaves a tombstone with its version."""
    tomb_id = tombstone_id(tenant=event.tenant, document_id=event.document_id)
    has_tomb = any(h.id == tomb_id and h.payload.get("deleted_by_version") == event.version for h in existing)
    upserts = [] if has_tomb else [tombstone_point(event, now=now)]
    soft = [h.id for h in live]
    if not upserts and not soft:
        return WritePlan(
            status="noop", reason=f"delete version {event.version} is already applied", fence=current
        )
    return WritePlan(
        status="apply",
        reason=f"delete version {event.version}",
        fence=current,
        upserts=upserts,
        soft_deletes=soft,
        soft_delete_payload=marker,
    )
