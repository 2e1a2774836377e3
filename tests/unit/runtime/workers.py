"""A stage worker run to completion for tests: what it emitted and what it dead-lettered."""

from __future__ import annotations

import queue
import threading
from typing import Any

from headwater.runtime.embedded.workers import Envelope, StageWorker


class Transient(Exception):
    pass


def run_worker(
    process: Any, messages: list[Any], *, name: str = "test", batch_size: int = 8, max_attempts: int = 3
) -> tuple[list[Envelope], list[tuple[Envelope, str]], StageWorker]:
    """Run `messages` through a worker until each is emitted or dead-lettered (with its error's name)."""
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
        name=name,
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
