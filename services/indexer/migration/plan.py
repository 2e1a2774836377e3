"""The migration state machine and the rules every reader and writer follows. Pure: no I/O.

A migration builds a *target* collection for a new embedding profile beside the *source* collection the
alias points at. While it is active both are written: each change goes, as is, into the collection whose
model embedded it, and is re-embedded for the other one. Readers follow the alias, which points at the
source until cutover and at the target after it; rollback points it back, and both stay written, so
cutover and rollback can alternate until `finish` retires the source (or `abort` drops the target).

    start ──► backfilling ──cutover──► cut_over ──finish──► finished
                  │   ▲                    │
                abort └──── rolled_back ◄──┘ rollback
                  ▼          │ abort
               aborted ◄─────┘
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.indexer.errors import MigrationError


class MigrationState(StrEnum):
    BACKFILLING = "backfilling"  # target filling up; readers on the source
    CUT_OVER = "cut_over"  # readers on the target; source still written, for rollback
    ROLLED_BACK = "rolled_back"  # readers back on the source; target still written
    FINISHED = "finished"  # source retired
    ABORTED = "aborted"  # target dropped

    @property
    def active(self) -> bool:
        return self in _ACTIVE


_ACTIVE = frozenset({MigrationState.BACKFILLING, MigrationState.CUT_OVER, MigrationState.ROLLED_BACK})
_NEXT: dict[str, dict[MigrationState, MigrationState]] = {
    "cutover": {
        MigrationState.BACKFILLING: MigrationState.CUT_OVER,
        MigrationState.ROLLED_BACK: MigrationState.CUT_OVER,
    },
    "rollback": {MigrationState.CUT_OVER: MigrationState.ROLLED_BACK},
    "finish": {MigrationState.CUT_OVER: MigrationState.FINISHED},
    "abort": {
        MigrationState.BACKFILLING: MigrationState.ABORTED,
        MigrationState.ROLLED_BACK: MigrationState.ABORTED,
    },
}


def collection_name(alias: str, model_id: str, dimension: int, generation: int = 1) -> str:
    """Versioned physical collection for a model; the alias in front of it is what readers use."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")
    return f"{alias}__{slug}__d{dimension}__v{generation}"


@dataclass(frozen=True, slots=True)
class IndexCollection:
    """A physical collection and the embedding model its dense vectors come from."""

    name: str
    alias: str
    model_id: str
    dimension: int
    profile: dict[str, Any] | None  # None: created by an indexer that only knew the model id


@dataclass(frozen=True, slots=True)
class Migration:
    id: int
    alias: str
    source: IndexCollection
    target: IndexCollection
    state: MigrationState
    applied_state: MigrationState | None  # what the index-owning process has carried out
    backfill_complete: bool  # embedded runtime: the copy scan reached the end
    reembedded_points: int
    embedded_texts: int
    started_at: datetime
    updated_at: datetime
    decisions: list[dict[str, Any]] = field(default_factory=list)
    scanned_points: int = 0  # embedded runtime: source points the copy scan has passed
    total_points: int | None = None  # embedded runtime: source points when the scan last looked

    @property
    def read_collection(self) -> IndexCollection:
        """What the alias points at in this state."""
        reading_target = self.state in (MigrationState.CUT_OVER, MigrationState.FINISHED)
        return self.target if reading_target else self.source

    @property
    def write_collections(self) -> list[IndexCollection]:
        """Every collection a change must reach in this state."""
        if self.state.active:
            return [self.source, self.target]
        return [self.target] if self.state is MigrationState.FINISHED else [self.source]


def next_state(current: MigrationState, command: str) -> MigrationState:
    """The state `command` leads to, or a MigrationError naming the states it applies in."""
    moves = _NEXT[command]
    if current not in moves:
        allowed = ", ".join(sorted(s.value for s in moves))
        raise MigrationError(f"cannot {command} a migration that is {current.value} (only when {allowed})")
    return moves[current]


@dataclass(frozen=True, slots=True)
class CutoverDecision:
    """Whether the target may take the readers, with the evidence; recorded whatever the outcome."""

    allowed: bool
    reasons: list[str]
    source_score: float | None
    target_score: float | None
    lag: int | None
    forced: bool

    def as_record(self, *, at: datetime, metric: str) -> dict[str, Any]:
        return {
            "command": "cutover",
            "at": at.isoformat(),
            "allowed": self.allowed,
            "forced": self.forced,
            "reasons": self.reasons,
            "metric": metric,
            "source_score": self.source_score,
            "target_score": self.target_score,
            "lag": self.lag,
        }


def decide_cutover(
    *, lag: int | None, source_score: float | None, target_score: float | None, force: bool
) -> CutoverDecision:
    """Cut over only when the target has caught up and scores at least as well as the source on the
    eval set; `force` overrides both checks (the decision records that it did)."""
    reasons: list[str] = []
    if lag is None:
        reasons.append("backfill lag unknown")
    elif lag > 0:
        reasons.append(f"backfill lag is {lag}, not 0")
    if source_score is None or target_score is None:
        reasons.append("no eval set scores (configure HEADWATER_MIGRATION_EVAL_SET or pass --eval-set)")
    elif target_score < source_score:
        reasons.append(f"target scores {target_score:.4f} < source {source_score:.4f}")
    return CutoverDecision(
        allowed=force or not reasons,
        reasons=reasons,
        source_score=source_score,
        target_score=target_score,
        lag=lag,
        forced=force and bool(reasons),
    )
