"""The periodic compaction job: what it compacts, when it is off, that it survives a failed run and stops."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from headwater.operations.compaction import GraphOpener, graph_opener_for, run_compaction
from headwater.runtime.compaction import CompactionJob, compaction_job
from services.graph_builder.adapters.memory import MemoryGraphStore
from services.graph_builder.ports import GraphMaintenance
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.config import CompactionSettings
from services.indexer.ports import CollectionSpec, DeletedScope, IndexFilter
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event
from tests.waiting import wait_until

DAY = timedelta(hours=24)


@pytest.fixture
def index() -> InMemoryIndex:
    idx = InMemoryIndex()
    idx.ensure_collection(CollectionSpec(name="chunks_v1", dense_dim=DIM))
    idx.switch_alias("chunks", "chunks_v1")
    for event in (make_event(version=1, texts=["a", "b"]), make_event(version=2, texts=["a"])):
        index_event(event, index=idx, collection="chunks", now=NOW - 2 * DAY)
    return idx


def _graph(store: GraphMaintenance) -> GraphOpener:
    @contextmanager
    def opened() -> Iterator[GraphMaintenance]:
        yield store

    return opened


def test_settings_default_to_a_day_of_retention_and_hourly_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CompactionSettings().retention == DAY
    assert CompactionSettings().compact_interval_s == 3600
    monkeypatch.setenv("HEADWATER_INDEXER_COMPACT_RETENTION_S", "60")
    monkeypatch.setenv("HEADWATER_INDEXER_COMPACT_INTERVAL_S", "0")
    monkeypatch.setenv("HEADWATER_INDEXER_ENGINE", "qdrant")  # another setting of the same prefix
    assert CompactionSettings().retention == timedelta(seconds=60)
    assert CompactionSettings().compact_interval_s == 0


def test_run_compaction_compacts_the_alias_target_and_the_graph(index: InMemoryIndex) -> None:
    store = MemoryGraphStore()
    done = run_compaction(
        index=index, collection="chunks", graph=_graph(store), settings=CompactionSettings(), now=NOW
    )

    assert done.index is not None
    assert (done.index.collection, done.index.hard_deleted) == ("chunks_v1", 1)
    assert done.graph == []  # no tenant has a graph yet
    assert index.count("chunks", IndexFilter(tenant="acme", include_deleted=True)) == 1


def test_a_dry_run_leaves_the_graph_alone(index: InMemoryIndex) -> None:
    class Untouchable:
        def tenants(self) -> list[str]:
            raise AssertionError("a dry run must not compact the graph")

    done = run_compaction(
        index=index,
        collection="chunks",
        graph=_graph(Untouchable()),  # type: ignore[arg-type]
        settings=CompactionSettings(),
        now=NOW,
        dry_run=True,
    )
    assert done.index is not None and done.index.due == 1 and done.index.hard_deleted == 0


def test_an_interval_of_zero_or_nothing_to_compact_means_no_job(index: InMemoryIndex) -> None:
    off = CompactionSettings(compact_interval_s=0)
    assert compaction_job(index=index, collection="chunks", graph=None, settings=off) is None
    assert compaction_job(index=None, collection="chunks", graph=None) is None
    assert graph_opener_for(MemoryGraphStore(), connect=lambda: None) is None  # type: ignore[arg-type,return-value]


def test_the_job_runs_repeatedly_survives_a_failure_and_stops(index: InMemoryIndex) -> None:
    class FailsOnce(InMemoryIndex):
        failed = False

        def count_deleted(self, collection: str, scope: DeletedScope) -> int:
            if not self.failed:
                self.failed = True
                raise RuntimeError("the engine hiccupped")
            return index.count_deleted(collection, scope)

        def purge_deleted(self, collection: str, scope: DeletedScope) -> int:
            return index.purge_deleted(collection, scope)

        def resolve_alias(self, alias: str) -> str | None:
            return index.resolve_alias(alias)

    fast = CompactionSettings(compact_interval_s=0.01, compact_first_delay_s=0)
    job = compaction_job(index=FailsOnce(), collection="chunks", graph=None, settings=fast)
    assert job is not None
    job.start()
    wait_until(lambda: job.runs >= 2)  # the failed run is logged, later ones succeed
    job.stop()
    assert not job.is_alive()
    assert index.count("chunks", IndexFilter(tenant="acme", include_deleted=True)) == 1


def test_a_collection_not_created_yet_is_no_failure(index: InMemoryIndex) -> None:
    job = CompactionJob(index=index, collection="missing", graph=None, settings=CompactionSettings())
    assert job.run_once() is None and job.runs == 0


def test_stopping_a_job_that_never_started_is_harmless(index: InMemoryIndex) -> None:
    job = CompactionJob(index=index, collection="chunks", graph=None, settings=CompactionSettings())
    job.stop()
    job.stop()
