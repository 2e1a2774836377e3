"""Stage workers: batching, bounded retries of transient errors, and poison isolation."""

from __future__ import annotations

import pytest

from tests.unit.runtime.workers import Transient, run_worker


def test_results_keep_order_and_journal_positions() -> None:
    emitted, dead, _ = run_worker(lambda batch: [m * 10 for m in batch], [1, 2, 3, 4, 5])
    assert [(e.seq, e.message) for e in emitted] == [(0, 10), (1, 20), (2, 30), (3, 40), (4, 50)]
    assert dead == []


def test_a_poison_message_is_dead_lettered_and_the_rest_flow_on() -> None:
    def process(batch: list[int]) -> list[int]:
        if 3 in batch:
            raise ValueError("cannot handle 3")
        return batch

    emitted, dead, worker = run_worker(process, [1, 2, 3, 4])
    assert [e.message for e in emitted] == [1, 2, 4]
    assert [(e.seq, kind) for e, kind in dead] == [(2, "ValueError")]
    assert worker.stats.dead_lettered == 1


def test_transient_errors_are_retried_then_succeed() -> None:
    failures = {"left": 2}

    def process(batch: list[int]) -> list[int]:
        if failures["left"]:
            failures["left"] -= 1
            raise Transient("backend busy")
        return batch

    emitted, dead, worker = run_worker(process, [1], max_attempts=3)
    assert [e.message for e in emitted] == [1] and dead == []
    assert worker.stats.retries == 2


def test_transient_errors_that_outlive_their_retries_dead_letter() -> None:
    def process(batch: list[int]) -> list[int]:
        raise Transient("down")

    emitted, dead, _ = run_worker(process, [1], max_attempts=2)
    assert emitted == [] and [kind for _, kind in dead] == ["Transient"]


@pytest.mark.parametrize("bad", [[], [1, 2]])
def test_a_stage_returning_the_wrong_number_of_results_is_an_error(bad: list[int]) -> None:
    emitted, dead, _ = run_worker(lambda batch: bad, [7])
    assert emitted == [] and [kind for _, kind in dead] == ["RuntimeError"]
