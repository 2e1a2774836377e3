"""Writes changes into every collection a migration keeps in sync, each in its own embedding model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from schemas import ChunksEnriched
from schemas.common import utc_now
from services.indexer.errors import ModelMismatch
from services.indexer.logic import plan_write
from services.indexer.migration.plan import IndexCollection
from services.indexer.ports import VectorIndex
from services.indexer.service import IndexOutcome, index_event

# Turns changes embedded by one model into the same changes embedded by a collection's model (the embedding
# stage's `Reembedder`, which the runtime hands in: the indexer never embeds by itself).
Reembed = Callable[[list[ChunksEnriched]], list[ChunksEnriched]]


@dataclass
class WriteReport:
    outcomes: list[IndexOutcome | None] = field(default_factory=list)  # per change: its first write
    reembedded_points: int = 0
    skipped_done: int = 0  # changes a collection already had: nothing embedded for them


def write_everywhere(
    events: list[ChunksEnriched],
    *,
    index: VectorIndex,
    collections: list[IndexCollection],
    reembedder_for: Callable[[IndexCollection], Reembed] | None,
    as_is: bool = True,
) -> WriteReport:
    """Index each change into every collection: as it is where its model matches (unless `as_is` is
    False: the distributed migration consumer leaves those to the indexer), re-embedded where it does
    not (only when `reembedder_for` is given; the distributed indexer leaves that to the migration
    consumer). A change that no collection can take as it is, and that may not be re-embedded here,
    raises ModelMismatch, so it is dead-lettered with the reason rather than written with foreign
    vectors."""
    if reembedder_for is None:
        models = {c.model_id for c in collections}
        foreign = sorted({e.model for e in events if e.model not in models})
        if foreign:
            raise ModelMismatch(
                f"changes embedded by {', '.join(foreign)}, but the collections written hold "
                f"{', '.join(sorted(models))}: replay them through the embedder (see the runbook)"
            )
    report = WriteReport(outcomes=[None] * len(events))
    for collection in collections:
        same = [i for i, e in enumerate(events) if as_is and e.model == collection.model_id]
        for i in same:
            outcome = index_event(events[i], index=index, collection=collection.name)
            report.outcomes[i] = report.outcomes[i] or outcome
        other = [i for i, e in enumerate(events) if e.model != collection.model_id]
        if other and reembedder_for is not None:
            sub = reembed_into(
                [events[i] for i in other],
                index=index,
                collection=collection,
                reembed=reembedder_for(collection),
            )
            for i, reembedded in zip(other, sub.outcomes, strict=True):
                report.outcomes[i] = report.outcomes[i] or reembedded
            report.reembedded_points += sub.reembedded_points
            report.skipped_done += sub.skipped_done
    return report


def reembed_into(
    events: list[ChunksEnriched], *, index: VectorIndex, collection: IndexCollection, reembed: Reembed
) -> WriteReport:
    """Re-embed and index the changes the collection does not hold yet. A change whose version the
    collection already has (a resumed backfill, a redelivery) is skipped before any embedding."""
    report = WriteReport(outcomes=[None] * len(events))
    todo: list[int] = []
    for i, event in enumerate(events):
        # The indexer's own plan, not `version <= fence`: a delete at the fence's version still wins the
        # tie, and a replay still finishes the soft-deletes a crash left undone.
        plan = plan_write(
            event, index.document_points(collection.name, event.tenant, event.document_id), utc_now()
        )
        if plan.status != "apply":
            report.skipped_done += 1
            report.outcomes[i] = IndexOutcome(
                tenant=event.tenant,
                document_id=event.document_id,
                version=event.version,
                status="noop",
                reason=f"{collection.name} already holds version {plan.fence}",
                upserted=0,
                soft_deleted=0,
            )
        else:
            todo.append(i)
    if todo:
        for i, event in zip(todo, reembed([events[i] for i in todo]), strict=True):
            outcome = index_event(event, index=index, collection=collection.name)
            report.outcomes[i] = outcome
            report.reembedded_points += outcome.upserted
    return report
