"""The embedded runtime compacts its own index and graph while it runs, and a replay after compaction
still cannot resurrect a deleted document."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from schemas import ChangeOp, IngestDocument
from services.indexer.logic import TOMBSTONE_CHUNK
from services.indexer.ports import IndexFilter
from tests.e2e.conftest import RuntimeFactory


def _wait_until(condition: Callable[[], bool], *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)  # polling an observable condition


def test_the_running_runtime_compacts_soft_deleted_chunks_and_keeps_the_fence(
    make_runtime: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_INDEXER_COMPACT_RETENTION_S", "0")
    monkeypatch.setenv("HEADWATER_INDEXER_COMPACT_INTERVAL_S", "0.2")
    monkeypatch.setenv("HEADWATER_INDEXER_COMPACT_FIRST_DELAY_S", "0")
    runtime = make_runtime()
    assert runtime.compaction is not None and runtime.compaction.is_alive()
    index, collection = runtime.parts.index, runtime.collection
    everything = IndexFilter(tenant="acme", include_deleted=True)

    first = IngestDocument(tenant="acme", document_id="note", text="Acme Corp opened an office in Oslo.")
    runtime.intake.accept(first.model_copy(update={"version": 1}))
    runtime.intake.accept(first.model_copy(update={"version": 2, "text": "Beta Ltd opened one in Bergen."}))
    runtime.intake.accept(IngestDocument(tenant="acme", document_id="note", op=ChangeOp.DELETE, version=3))
    assert runtime.wait_idle(timeout=60)

    def only_the_tombstone_left() -> bool:
        points = index.scroll(collection, filter=everything, limit=100)
        return [p.payload["chunk_id"] for p in points] == [TOMBSTONE_CHUNK]

    _wait_until(only_the_tombstone_left)
    # A full replay of the document's history after compaction: still deleted.
    runtime.intake.accept(first.model_copy(update={"version": 1}))
    runtime.intake.accept(first.model_copy(update={"version": 2, "text": "Beta Ltd opened one in Bergen."}))
    assert runtime.wait_idle(timeout=60)
    assert index.scroll(collection, filter=IndexFilter(tenant="acme"), limit=100) == []
    runs = runtime.compaction.runs
    _wait_until(lambda: runtime.compaction is not None and runtime.compaction.runs > runs)  # graph ran too

    runtime.stop()
    assert not runtime.compaction.is_alive()
