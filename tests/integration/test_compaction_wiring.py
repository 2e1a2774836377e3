"""The distributed runtime starts the compaction job in the processes that own the writes, and stops it
before anything it uses is closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import HeadwaterSettings
from headwater.runtime.compaction import CompactionJob
from headwater.runtime.distributed.bootstrap import build_service
from headwater.runtime.distributed.process import ServiceProcess


def _job(process: ServiceProcess) -> CompactionJob | None:
    first = process.closers[0] if process.closers else None
    owner = getattr(first, "__self__", None)
    return owner if isinstance(owner, CompactionJob) else None


@pytest.mark.parametrize("service", ["indexer", "graph-builder"])
def test_the_writer_of_the_index_or_graph_compacts_it(
    service: str, tmp_path: Path, postgres_url: str, pg_schema: str
) -> None:
    settings = HeadwaterSettings(
        home=tmp_path, database_url=postgres_url, database_schema=pg_schema, environment="test"
    )
    process = build_service(service, settings=settings)
    job = _job(process)
    try:
        assert job is not None and job.is_alive()
        if service == "indexer":
            assert job.run_once() is None  # nothing indexed yet: no collection, nothing to do
            process.handlers.index.ensure_collection(model=("test-model", 8))
        run = job.run_once()
        assert run is not None
        assert (run.index is not None) is (service == "indexer")
        assert run.graph == []  # the graph-builder's graph is empty; the indexer has none
    finally:
        for close in process.closers:
            close()
    assert not job.is_alive()


def test_other_services_and_an_interval_of_zero_run_no_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = HeadwaterSettings(home=tmp_path, environment="test")
    assert _job(build_service("chunker", settings=settings)) is None
    monkeypatch.setenv("HEADWATER_INDEXER_COMPACT_INTERVAL_S", "0")
    process = build_service("indexer", settings=settings)
    try:
        assert _job(process) is None
    finally:
        for close in process.closers:
            close()
