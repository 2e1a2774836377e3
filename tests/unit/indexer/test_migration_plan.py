"""The migration state machine: which commands apply in which state, which collections are read and
written in each state, and the cutover gate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.indexer.errors import MigrationError
from services.indexer.migration.plan import (
    IndexCollection,
    Migration,
    MigrationState,
    decide_cutover,
    next_state,
)

S = MigrationState
COMMANDS = ("cutover", "rollback", "finish", "abort")
ALLOWED: dict[tuple[MigrationState, str], MigrationState] = {
    (S.BACKFILLING, "cutover"): S.CUT_OVER,
    (S.ROLLED_BACK, "cutover"): S.CUT_OVER,
    (S.CUT_OVER, "rollback"): S.ROLLED_BACK,
    (S.CUT_OVER, "finish"): S.FINISHED,
    (S.BACKFILLING, "abort"): S.ABORTED,
    (S.ROLLED_BACK, "abort"): S.ABORTED,
}
# For each command, the states it applies in, as the refusal names them.
APPLIES_IN = {
    "cutover": "backfilling, rolled_back",
    "rollback": "cut_over",
    "finish": "cut_over",
    "abort": "backfilling, rolled_back",
}
REFUSED = [(state, cmd) for state in S for cmd in COMMANDS if (state, cmd) not in ALLOWED]

SOURCE = IndexCollection(name="chunks__a__d64__v1", alias="chunks", model_id="a", dimension=64, profile=None)
TARGET = IndexCollection(
    name="chunks__b__d32__v1", alias="chunks", model_id="b", dimension=32, profile={"name": "b"}
)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _migration(state: MigrationState) -> Migration:
    return Migration(
        id=1,
        alias="chunks",
        source=SOURCE,
        target=TARGET,
        state=state,
        applied_state=None,
        backfill_complete=False,
        reembedded_points=0,
        embedded_texts=0,
        started_at=T0,
        updated_at=T0,
    )


@pytest.mark.parametrize(("state", "command"), list(ALLOWED))
def test_every_allowed_transition(state: MigrationState, command: str) -> None:
    assert next_state(state, command) is ALLOWED[(state, command)]


@pytest.mark.parametrize(("state", "command"), REFUSED)
def test_every_other_transition_is_refused_naming_the_states_it_applies_in(
    state: MigrationState, command: str
) -> None:
    with pytest.raises(MigrationError) as refused:
        next_state(state, command)
    message = str(refused.value)
    assert f"cannot {command} a migration that is {state.value}" in message
    assert f"(only when {APPLIES_IN[command]})" in message


def test_the_tables_cover_every_state_and_command() -> None:
    assert len(ALLOWED) + len(REFUSED) == len(S) * len(COMMANDS)
    assert {s for s in S if s.active} == {S.BACKFILLING, S.CUT_OVER, S.ROLLED_BACK}
    # Nothing leads out of the two final states.
    assert not [key for key in ALLOWED if key[0] in (S.FINISHED, S.ABORTED)]


@pytest.mark.parametrize(
    ("state", "reads", "writes"),
    [
        (S.BACKFILLING, SOURCE, [SOURCE, TARGET]),
        (S.CUT_OVER, TARGET, [SOURCE, TARGET]),
        (S.ROLLED_BACK, SOURCE, [SOURCE, TARGET]),
        (S.FINISHED, TARGET, [TARGET]),
        (S.ABORTED, SOURCE, [SOURCE]),
    ],
)
def test_read_and_write_collections_per_state(
    state: MigrationState, reads: IndexCollection, writes: list[IndexCollection]
) -> None:
    migration = _migration(state)
    assert migration.read_collection == reads
    assert migration.write_collections == writes


def test_cutover_when_caught_up_and_at_least_as_good() -> None:
    decision = decide_cutover(lag=0, source_score=0.5, target_score=0.6, force=False)
    assert decision.allowed and not decision.forced
    assert decision.reasons == []
    assert (decision.lag, decision.source_score, decision.target_score) == (0, 0.5, 0.6)


def test_equal_scores_are_allowed() -> None:
    decision = decide_cutover(lag=0, source_score=0.42, target_score=0.42, force=False)
    assert decision.allowed and decision.reasons == [] and not decision.forced


@pytest.mark.parametrize(("lag", "reason"), [(None, "backfill lag unknown"), (7, "backfill lag is 7, not 0")])
def test_lag_unknown_or_positive_refuses(lag: int | None, reason: str) -> None:
    decision = decide_cutover(lag=lag, source_score=0.5, target_score=0.9, force=False)
    assert not decision.allowed and not decision.forced
    assert decision.reasons == [reason]


@pytest.mark.parametrize(("source", "target"), [(None, 0.5), (0.5, None), (None, None)])
def test_missing_scores_refuse(source: float | None, target: float | None) -> None:
    decision = decide_cutover(lag=0, source_score=source, target_score=target, force=False)
    assert not decision.allowed
    assert len(decision.reasons) == 1 and "no eval set scores" in decision.reasons[0]


def test_a_worse_target_refuses_with_both_scores() -> None:
    decision = decide_cutover(lag=0, source_score=0.61, target_score=0.6, force=False)
    assert not decision.allowed
    assert decision.reasons == ["target scores 0.6000 < source 0.6100"]


def test_every_failed_check_is_a_reason() -> None:
    decision = decide_cutover(lag=3, source_score=0.9, target_score=0.1, force=False)
    assert not decision.allowed
    assert decision.reasons == ["backfill lag is 3, not 0", "target scores 0.1000 < source 0.9000"]


def test_force_overrides_every_check_and_says_so() -> None:
    decision = decide_cutover(lag=None, source_score=None, target_score=None, force=True)
    assert decision.allowed and decision.forced
    assert len(decision.reasons) == 2  # the evidence is kept, though overridden


def test_force_with_nothing_to_override_is_not_forced() -> None:
    decision = decide_cutover(lag=0, source_score=0.3, target_score=0.3, force=True)
    assert decision.allowed and not decision.forced and decision.reasons == []


def test_the_decision_record_carries_the_evidence() -> None:
    at = datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)
    record = decide_cutover(lag=2, source_score=0.5, target_score=0.4, force=True).as_record(
        at=at, metric="ndcg@10"
    )
    assert record == {
        "command": "cutover",
        "at": at.isoformat(),
        "allowed": True,
        "forced": True,
        "reasons": ["backfill lag is 2, not 0", "target scores 0.4000 < source 0.5000"],
        "metric": "ndcg@10",
        "source_score": 0.5,
        "target_score": 0.4,
        "lag": 2,
    }
