"""The indexing use case: read a document's points, fence the event's version, write in a crash-safe order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import ChunksEnriched
from schemas.common import utc_now
from services.indexer.logic import PlanStatus, plan_write
from services.indexer.ports import VectorIndex


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    """What indexing one event did; `stale` and `noop` events are acknowledged without writes."""

    tenant: str
    document_id: str
    version: int
    status: PlanStatus
    reason: str
    upserted: int
    soft_deleted: int


def index_event(
    event: ChunksEnriched, *, index: VectorIndex, collection: str, now: datetime | None = None
) -> IndexOutcome:
    """Apply one enriched chunk set to the index, idempotently and in version order.

    Fencing reads the document's points from the index itself (see `logic`), so replays, duplicates and
    out-of-order deliveries converge without any other store. New points are written before the old
    ones are soft-deleted: a crash in between leaves both versions visible for a moment, never none,
    and replaying the event finishes the soft-deletes. Concurrent writers of one document are not
    fenced against each other: the runtime serialises events per document (one partition key).
    """
    existing = index.document_points(collection, event.tenant, event.document_id)
    plan = plan_write(event, existing, now or utc_now())
    if plan.upserts:
        index.upsert(collection, plan.upserts)
    if plan.soft_deletes:
        index.set_payload(collection, plan.soft_deletes, plan.soft_delete_payload)
    return IndexOutcome(
        tenant=event.tenant,
        document_id=event.document_id,
        version=event.version,
        status=plan.status,
        reason=plan.reason,
        upserted=len(plan.upserts),
        soft_deleted=len(plan.soft_deletes),
    )
