"""`headwater migrate`: the operator's side of an embedding-model migration.

These functions record decisions in Postgres and read progress; the index-owning process carries the
decisions out (`headwater.runtime.migrations`). Comparisons search through the query gateway with the
`index` field, so they read each collection exactly as users would, with that collection's model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from headwater.evaluation import ndcg_at
from schemas import SearchPage, SearchRequest
from schemas.common import utc_now
from schemas.search import GroupBy, SearchMode
from services.embedder.ports import EmbeddingBackend
from services.embedder.profiles import ModelProfile
from services.indexer.errors import MigrationError
from services.indexer.migration.plan import (
    CutoverDecision,
    IndexCollection,
    Migration,
    MigrationState,
    collection_name,
    decide_cutover,
)
from services.indexer.migration.store import MigrationStore

Search = Callable[[SearchRequest], SearchPage]
METRIC_K = 10


class EvalQuery(BaseModel):
    """One query of an eval set and its relevant documents (graded, or a list: grade 1)."""

    tenant: str
    query: str
    relevant: dict[str, int] | list[str] = Field(min_length=1)

    def grades(self) -> dict[str, int]:
        return dict.fromkeys(self.relevant, 1) if isinstance(self.relevant, list) else dict(self.relevant)


def load_eval_set(path: Path) -> list[EvalQuery]:
    """A JSON list of {tenant, query, relevant}, or JSON lines of the same."""
    text = path.read_text()
    rows = (
        json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]
    )
    return [EvalQuery.model_validate(row) for row in rows]


@dataclass(frozen=True)
class SideBySide:
    queries: int
    source_score: float
    target_score: float
    better: int  # queries where the target scores higher
    worse: int
    overlap: float  # mean share of the top-k documents both sides return
    mode: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": f"ndcg@{METRIC_K}",
            "queries": self.queries,
            "source": round(self.source_score, 4),
            "target": round(self.target_score, 4),
            "better": self.better,
            "worse": self.worse,
            "same": self.queries - self.better - self.worse,
            "overlap@10": round(self.overlap, 4),
            "mode": self.mode,
        }


def compare(
    search: Search,
    queries: list[EvalQuery],
    *,
    source: str,
    target: str,
    mode: SearchMode = SearchMode.HYBRID,
) -> SideBySide:
    """Run every eval query against both collections; nDCG@10 over documents."""
    if not queries:
        raise MigrationError("the eval set is empty")
    sums = {source: 0.0, target: 0.0}
    better = worse = 0
    overlap = 0.0
    for q in queries:
        ranked: dict[str, list[str]] = {}
        for name in (source, target):
            page = search(
                SearchRequest(
                    query=q.query,
                    tenant=q.tenant,
                    mode=mode,
                    top_k=METRIC_K,
                    group_by=GroupBy.DOCUMENT,
                    index=name,
                )
            )
            ranked[name] = [hit.document_id for hit in page.hits]
        scores = {name: ndcg_at(ranked[name], q.grades(), METRIC_K) for name in ranked}
        for name, score in scores.items():
            sums[name] += score
        better += scores[target] > scores[source] + 1e-9
        worse += scores[target] < scores[source] - 1e-9
        union = set(ranked[source]) | set(ranked[target])
        overlap += len(set(ranked[source]) & set(ranked[target])) / len(union) if union else 1.0
    n = len(queries)
    return SideBySide(
        queries=n,
        source_score=sums[source] / n,
        target_score=sums[target] / n,
        better=better,
        worse=worse,
        overlap=overlap / n,
        mode=mode.value,
    )


def live_collection(store: MigrationStore, alias: str) -> IndexCollection:
    """The one collection the alias is built on when no migration is active."""
    live = store.live_collections(alias)
    if len(live) != 1:
        names = ", ".join(c.name for c in live) or "none"
        raise MigrationError(
            f"alias {alias!r} has {len(live)} live collections ({names}); start the runtime once so it"
            " registers its collection, or finish/abort the migration in progress"
        )
    return live[0]


def start(
    store: MigrationStore,
    *,
    alias: str,
    profile: ModelProfile,
    backend: EmbeddingBackend,
    configured: tuple[ModelProfile, str] | None = None,
) -> Migration:
    """Record a migration to `profile`; the index-owning process creates the collection and backfills.
    `configured` is the deployment's current profile and the model id it builds: recorded for the source
    if the indexer that created it could not know it, so any process can rebuild the source's model
    (it keeps being written, re-embedded, until the migration is finished)."""
    active = store.current(alias)
    if active is not None and active.state.active:
        raise MigrationError(
            f"migration {active.id} of {alias!r} is {active.state.value}; finish or abort it first"
        )
    source = live_collection(store, alias)
    if source.profile is None and configured is not None and configured[1] == source.model_id:
        store.record_profile(source.name, configured[0].model_dump())
        source = live_collection(store, alias)
    if source.model_id == backend.model_id:
        raise MigrationError(f"{source.name} already holds {backend.model_id}")
    generation = 1
    while store.collection(collection_name(alias, backend.model_id, backend.dimension, generation)):
        generation += 1  # a model used before (A → B → A) gets a fresh collection, never a retired one
    target = IndexCollection(
        name=collection_name(alias, backend.model_id, backend.dimension, generation),
        alias=alias,
        model_id=backend.model_id,
        dimension=backend.dimension,
        profile=profile.model_dump(),
    )
    return store.start(alias=alias, source=source, target=target)


def require(store: MigrationStore, alias: str) -> Migration:
    found = store.current(alias)
    if found is None:
        raise MigrationError(f"alias {alias!r} has no migration; start one with `headwater migrate start`")
    return found


def copy_scanned(migration: Migration) -> bool:
    """Whether the embedded runtime's copy scan records this migration's progress; otherwise the
    distributed migration consumer group's offsets do."""
    return migration.total_points is not None or migration.backfill_complete


def backfill_lag(migration: Migration, kafka_lag: Callable[[Migration], int | None] | None) -> int | None:
    """Changes the target has yet to receive: the copy scan's remaining points (embedded runtime), or the
    migration consumer group's lag on the enriched-chunks topic (distributed)."""
    if copy_scanned(migration):
        if migration.backfill_complete:
            return 0
        return max(0, (migration.total_points or 0) - migration.scanned_points)
    return kafka_lag(migration) if kafka_lag is not None else None


def cutover(
    store: MigrationStore,
    migration: Migration,
    *,
    lag: int | None,
    scores: SideBySide | None,
    force: bool,
) -> tuple[CutoverDecision, Migration]:
    """Move readers to the target if the gate allows (or `force`); the decision is recorded either way."""
    decision = decide_cutover(
        lag=lag,
        source_score=scores.source_score if scores else None,
        target_score=scores.target_score if scores else None,
        force=force,
    )
    record = decision.as_record(at=utc_now(), metric=f"ndcg@{METRIC_K}")
    if scores is not None:
        record["comparison"] = scores.as_dict()
    if not decision.allowed:
        store.record_decision(migration.id, record)
        return decision, migration
    return decision, store.transition(migration.id, "cutover", record=record)


def command(store: MigrationStore, migration: Migration, name: str, *, note: str = "") -> Migration:
    """rollback, finish or abort: recorded with the time and the operator's note."""
    return store.transition(
        migration.id, name, record={"command": name, "at": utc_now().isoformat(), "note": note}
    )


def wait_applied(store: MigrationStore, migration: Migration, *, timeout_s: float) -> Migration:
    """Until the index-owning process reports the recorded state carried out (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    current = migration
    while time.monotonic() < deadline:
        found = store.get(migration.id)
        assert found is not None
        current = found
        if current.applied_state is current.state:
            return current
        time.sleep(0.2)
    return current


def progress(
    migration: Migration, lag: int | None, *, records: tuple[int, int] | None = None
) -> dict[str, Any]:
    """What `migrate status` shows: state, sides, backfill progress, lag and an ETA. Progress counts
    source points copied (embedded), or `records`: (read, total) of the migration consumer group on
    the enriched-chunk topic (distributed)."""
    elapsed = max(1e-3, (migration.updated_at - migration.started_at).total_seconds())
    done: int = records[0] if records is not None else migration.scanned_points
    total: int | None = records[1] if records is not None else migration.total_points
    eta = None
    if lag is not None and lag > 0 and done > 0 and migration.state is MigrationState.BACKFILLING:
        eta = round(lag / (done / elapsed), 1)
    return {
        "id": migration.id,
        "alias": migration.alias,
        "state": migration.state.value,
        "applied_state": migration.applied_state.value if migration.applied_state else None,
        "source": {"collection": migration.source.name, "model": migration.source.model_id},
        "target": {"collection": migration.target.name, "model": migration.target.model_id},
        "reads": migration.read_collection.name,
        "backfilled": done,
        "total": total,
        "backfill_complete": migration.backfill_complete or lag == 0,
        "lag": lag,
        "eta_s": eta,
        "reembedded_points": migration.reembedded_points,
        "embedded_texts": migration.embedded_texts,
        "started_at": migration.started_at.isoformat(),
        "decisions": migration.decisions,
    }
