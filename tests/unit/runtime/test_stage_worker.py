"""Stage workers: batching, bounded retries of transient errors, and poison isolation."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from headwater.runtime.embedded.workers import Envelope, StageWorker


class Transient(Exception):
    pass


def _run(
    process: Any, messages: list[Any], *, batch_size: int = 8, max_attempts: int = 3
) -> tuple[list[Envelope], list[tuple[Envelope, str]], StageWorker]:
    inbox: queue.Queue[Envelope] = queue.Queue()
    for seq, message in enumerate(messages):
        inbox.put(Envelope(seq, message))
    emitted: list[Envelope] = []
    dead: list[tuple[Envelope, str]] = []
    stop = threading.Event()
    done = threading.Event()

    def emit(envelopes: list[Envelope]) -> None:
        emitted.extend(envelopes)
        if len(emitted) + len(dead) == len(messages):
            done.set()

    def dead_letter(stage: str, envelope: Envelope, error: BaseException, attempts: int) -> None:
        dead.append((envelope, type(error).__name__))
        if len(emitted) + len(dead) == len(messages):
            done.set()

    worker = StageWorker(
        name="test",
        inbox=inbox,
        process=process,
        emit=emit,
        dead_letter=dead_letter,
        batch_size=batch_size,
        transient=(Transient,),
        max_attempts=max_attempts,
        stop=stop,
        backoff_seconds=0.001,
    )
    worker.start()
    assert done.wait(timeout=10)
    stop.set()
    worker.join(timeout=5)
    return emitted, dead, worker


def test_results_keep_order_and_journal_positions() -> None:
    emitted, dead, _ = _run(lambda batch: [m * 10 for m in batch], [1, 2, 3, 4, 5])
    assert [(e.seq, e.message) for e in emitted] == [(0, 10), (1, 20), (2, 30), (3, 40), (4, 50)]
    assert dead == []


def test_a_poison_message_is_dead_lettered_and_the_rest_flow_on() -> None:
    def process(batch: list[int]) -> list[int]:
        if 3 in batch:
            raise ValueError("cannot handle 3")
        return batch

    emitted, dead, worker = _run(process, [1, 2, 3, 4])
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

    emitted, dead, worker = _run(process, [1], max_attempts=3)
    assert [e.message for e in emitted] == [1] and dead == []
    assert worker.stats.retries == 2


def test_transient_errors_that_outlive_their_retries_dead_letter() -> None:
    def process(batch: list[int]) -> list[int]:
        raise Transient("down")

    emitted, dead, _ = _run(process, [1], max_attempts=2)
    assert emitted == [] and [kind for _, kind in dead] == ["Transient"]


@pytest.mark.parametrize("bad", [[], [1, 2]])
def test_a_stage_returning_the_wrong_number_of_results_is_an_error(bad: list[int]) -> None:
    emitted, dead, _ = _run(lambda batch: bad, [7])
    assert emitted == [] and [kind for _, kind in dead] == ["RuntimeError"]
