"""Embedding-model migration on the embedded runtime, with the real models: all-MiniLM-L6-v2 (int8) to
the same model cut to 256 dimensions, a second configuration whose vectors cannot mix with the first."""

from __future__ import annotations

import json
import threading
import uuid
from importlib import resources
from pathlib import Path

import pytest

from headwater.config import HeadwaterSettings, MigrationSettings
from headwater.operations import migrate
from headwater.runtime.embedded import EmbeddedHeadwater, build
from schemas import IngestDocument, SearchPage, SearchRequest
from services.embedder.factory import build_profile_backend
from services.embedder.profiles import BUILTIN_PROFILES
from services.indexer.errors import MigrationError
from services.indexer.migration.plan import MigrationState
from services.indexer.ports import IndexFilter
from tests.e2e.conftest import free_port, serve_embedded

pytestmark = pytest.mark.slow

TARGET = BUILTIN_PROFILES["minilm-int8-d256"]


def demo_documents() -> list[IngestDocument]:
    lines = resources.files("headwater.samples").joinpath("demo.jsonl").read_text().splitlines()
    return [IngestDocument.model_validate_json(line) for line in lines if line.strip()]


def demo_queries() -> list[dict[str, str]]:
    return json.loads(resources.files("headwater.samples").joinpath("queries.json").read_text())


def answers(runtime: EmbeddedHeadwater, queries: list[dict[str, str]]) -> list[SearchPage]:
    return [
        runtime.query.search(SearchRequest(query=q["query"], tenant=q["tenant"], top_k=10)) for q in queries
    ]


def ranking(page: SearchPage) -> list[tuple[str, str, float]]:
    return [(h.document_id, h.chunk_id, h.score) for h in page.hits]


class QueryLoop(threading.Thread):
    """Searches without pause while the migration runs; records failures and which index answered."""

    def __init__(self, runtime: EmbeddedHeadwater, queries: list[dict[str, str]]) -> None:
        super().__init__(daemon=True)
        self.runtime, self.queries = runtime, queries
        self.stop = threading.Event()
        self.failures: list[str] = []
        # (collection readers must get, when the query was sent; None while a switch is in flight)
        self.answered_by: list[tuple[str | None, str | None]] = []
        self.expected: str | None = None

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            q = self.queries[i % len(self.queries)]
            expected = self.expected
            try:
                page = self.runtime.query.search(SearchRequest(query=q["query"], tenant=q["tenant"], top_k=5))
                self.answered_by.append((expected, page.index))
            except Exception as exc:  # any failure at all is what the test counts
                self.failures.append(f"{type(exc).__name__}: {exc}")
            i += 1


def test_migration_cutover_rollback_finish_under_query_load(postgres_url: str, tmp_path: Path) -> None:
    settings = HeadwaterSettings(
        home=tmp_path / "home",
        database_url=postgres_url,
        database_schema=f"mig_{uuid.uuid4().hex[:10]}",
        environment="test",
    )
    runtime = EmbeddedHeadwater(build(settings, migration=MigrationSettings(page_size=16, poll_s=0.05)))
    runtime.start()
    try:
        for doc in demo_documents():
            runtime.intake.accept(doc)
        assert runtime.wait_idle(timeout=600)
        queries = demo_queries()
        store = runtime.migrations
        alias = settings.collection_alias
        source = migrate.live_collection(store, alias)
        assert source.model_id == "all-MiniLM-L6-v2+onnx-int8"

        loop = QueryLoop(runtime, queries)
        loop.expected = source.name
        loop.start()
        backend = build_profile_backend(TARGET)
        migration = migrate.start(store, alias=alias, profile=TARGET, backend=backend)
        assert migration.target.dimension == 256 and migration.target.name != source.name
        with pytest.raises(MigrationError):  # one migration per alias at a time
            migrate.start(store, alias=alias, profile=TARGET, backend=backend)

        # A change during the backfill reaches both collections, each in its own model.
        runtime.intake.accept(
            IngestDocument(
                tenant="acme", document_id="migration-note", text="Quarterly zebra audit moved to Thursday."
            )
        )
        migration = _wait(store, migration.id, lambda m: m.backfill_complete)
        assert runtime.wait_idle(timeout=120)
        index = runtime.parts.index
        source_live = _live_ids(index, source.name)
        target_live = _live_ids(index, migration.target.name)
        assert source_live == target_live and len(source_live) > 30
        models = {h.payload["model"] for h in _live(index, migration.target.name)}
        assert models == {backend.model_id}
        before = answers(runtime, queries)  # readers are still on the source
        assert {p.index for p in before} == {source.name}

        # The gate: lag 0 and a score at least as good, or refused with the evidence kept.
        eval_set = [
            migrate.EvalQuery(tenant="acme", query=q["query"], relevant=[p.hits[0].document_id])
            for q, p in zip(queries, before, strict=True)
            if p.hits
        ]
        lag = migrate.backfill_lag(migration, None)
        assert lag == 0
        scores = migrate.compare(
            runtime.query.search, eval_set, source=source.name, target=migration.target.name
        )
        refused, _ = migrate.cutover(store, migration, lag=5, scores=scores, force=False)
        assert not refused.allowed and "backfill lag is 5, not 0" in refused.reasons
        loop.expected = None
        decision, migration = migrate.cutover(store, migration, lag=lag, scores=scores, force=True)
        assert decision.allowed
        migration = migrate.wait_applied(store, migration, timeout_s=30)
        assert migration.applied_state is MigrationState.CUT_OVER
        loop.expected = migration.target.name
        after = answers(runtime, queries)
        assert {p.index for p in after} == {migration.target.name}
        assert [ranking(p) for p in after] != [ranking(p) for p in before]  # another model answers

        loop.expected = None
        migration = migrate.command(store, migration, "rollback")
        migration = migrate.wait_applied(store, migration, timeout_s=30)
        loop.expected = source.name
        rolled_back = answers(runtime, queries)
        assert [ranking(p) for p in rolled_back] == [ranking(p) for p in before]  # exactly the old answers

        loop.expected = None
        migration = migrate.cutover(store, migration, lag=0, scores=scores, force=True)[1]
        migration = migrate.wait_applied(store, migration, timeout_s=30)
        loop.expected = migration.target.name
        migration = migrate.command(store, migration, "finish")
        migration = migrate.wait_applied(store, migration, timeout_s=30)
        loop.stop.set()
        loop.join(timeout=30)

        assert loop.failures == []
        checked = [(expected, answered) for expected, answered in loop.answered_by if expected is not None]
        assert len(checked) > 20
        assert [pair for pair in checked if pair[0] != pair[1]] == []  # never the wrong index
        assert {answered for _, answered in checked} == {source.name, migration.target.name}
        assert not index.collection_exists(source.name)
        assert not store.is_live(source.name)
        # After finish the pipeline embeds with the new model: a new document goes straight in.
        runtime.intake.accept(IngestDocument(tenant="acme", document_id="after-finish", text="Zebra audits."))
        assert runtime.wait_idle(timeout=120)
        page = runtime.query.search(SearchRequest(query="zebra audit", tenant="acme", top_k=3))
        assert page.index == migration.target.name
        assert "after-finish" in [h.document_id for h in page.hits]
        assert runtime.embedding.backend.model_id == backend.model_id
    finally:
        runtime.stop()


def _wait(store, migration_id, predicate, timeout=300.0):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = store.get(migration_id)
        if predicate(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"migration {migration_id} did not get there: {store.get(migration_id)}")


def _live(index, collection):  # type: ignore[no-untyped-def]
    hits = []
    cursor = None
    while True:
        page, cursor = index.scan(collection, after=cursor, limit=256)
        hits += [h for h in page if h.payload.get("state") == "live"]
        if cursor is None:
            return hits


def _live_ids(index, collection) -> set[str]:  # type: ignore[no-untyped-def]
    return {h.id for h in _live(index, collection)}


_ = IndexFilter


def test_backfill_killed_midway_resumes_without_reembedding_finished_chunks(
    postgres_url: str, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from headwater.kernel.postgres import connect
    from services.indexer.adapters.edge import EdgeIndex
    from services.indexer.migration.store import MigrationStore

    schema = f"migk_{uuid.uuid4().hex[:10]}"
    home = tmp_path / "home"
    settings = HeadwaterSettings(
        home=home, database_url=postgres_url, database_schema=schema, environment="test"
    )
    runtime = EmbeddedHeadwater(build(settings)).start()
    for doc in demo_documents():
        runtime.intake.accept(doc)
    assert runtime.wait_idle(timeout=600)
    runtime.stop()

    env = {
        **os.environ,
        "HEADWATER_DATABASE_URL": postgres_url,
        "HEADWATER_DATABASE_SCHEMA": schema,
        "HEADWATER_ENVIRONMENT": "test",
        "HEADWATER_QUERY_AUTH": "disabled",
        "HEADWATER_MIGRATION_PAGE_SIZE": "2",
        "HEADWATER_MIGRATION_PAUSE_S": "0.2",  # a throttled backfill, so the kill lands in the middle
        "HEADWATER_MIGRATION_POLL_S": "0.1",
    }
    port = free_port()
    server = serve_embedded(home, port, env)
    store = MigrationStore(lambda: connect(postgres_url, schema=schema))
    try:
        started = subprocess.run(
            [
                sys.executable,
                "-m",
                "headwater.cli",
                "migrate",
                "start",
                "--model",
                TARGET.name,
                "--home",
                str(home),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert started.returncode == 0, started.stderr
        migration = store.current(settings.collection_alias)
        assert migration is not None and migration.state is MigrationState.BACKFILLING
        midway = _wait(
            store,
            migration.id,
            lambda m: m.total_points and m.scanned_points >= m.total_points // 4 and not m.backfill_complete,
        )
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        at_kill = store.get(migration.id)
        assert (
            at_kill is not None
            and not at_kill.backfill_complete
            and at_kill.scanned_points >= midway.scanned_points
        )

        index = EdgeIndex(home / "index")
        finished_at_kill = _live_ids(index, migration.target.name)
        source_live = _live_ids(index, migration.source.name)
        index.close()
        assert 0 < len(finished_at_kill) < len(source_live)

        server = serve_embedded(home, port, env)
        done = _wait(store, migration.id, lambda m: m.backfill_complete)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        index = EdgeIndex(home / "index")
        assert _live_ids(index, migration.target.name) == source_live
        index.close()

        embedded_after_restart = done.embedded_texts - at_kill.embedded_texts
        print(
            f"chunks={len(source_live)} finished_at_kill={len(finished_at_kill)}"
            f" embedded_after_restart={embedded_after_restart}"
        )
        assert 0 < embedded_after_restart <= len(source_live - finished_at_kill)
    finally:
        if server.poll() is None:
            server.kill()
        store.close()
