"""The embedded runtime compacts its own index and graph while it runs, and a replay after compaction
still cannot resurrect a deleted document."""

from __future__ import annotations

import pytest

from schemas import ChangeOp, IngestDocument
from services.indexer.logic import TOMBSTONE_CHUNK
from services.indexer.ports import IndexFilter
from tests.e2e.conftest import RuntimeFactory
from tests.waiting import wait_until


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

    wait_until(only_the_tombstone_left, timeout_s=60, interval_s=0.05)
    # A full replay of the document's history after compaction: still deleted.
    runtime.intake.accept(first.model_copy(update={"version": 1}))
    runtime.intake.accept(first.model_copy(update={"version": 2, "text": "Beta Ltd opened one in Bergen."}))
    assert runtime.wait_idle(timeout=60)
    assert index.scroll(collection, filter=IndexFilter(tenant="acme"), limit=100) == []
    runs = runtime.compaction.runs
    wait_until(  # graph ran too
        lambda: runtime.compaction is not None and runtime.compaction.runs > runs,
        timeout_s=60,
        interval_s=0.05,
    )

    runtime.stop()
    assert not runtime.compaction.is_alive()
