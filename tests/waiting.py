"""Polling for a condition that other threads, processes or a broker make true, instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.01,
    what: str = "condition",
) -> None:
    """Poll `condition` until it holds; an AssertionError naming `what` once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, timeout_s: float = 60.0, interval_s: float = 0.1
) -> bool:
    """Poll `check` (plain or async) until it holds or `timeout_s` passes, and say whether it held; the
    caller asserts what it needs afterwards."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)
