"""`headwater compact` on an embedded home at rest (edge index, real Postgres for the graph), and its refusal
while a running process holds the index."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from typer.testing import CliRunner

from headwater.cli import app
from schemas.common import utc_now
from services.graph_builder.adapters.postgres import PostgresGraphStore
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.ports import CollectionSpec, IndexFilter
from services.indexer.service import index_event
from tests.builders import DIM, make_event

runner = CliRunner()
ALIAS = "headwater_chunks"  # the runtime's default alias


def _home_with_index(home: Path) -> None:
    """Chunks soft-deleted two days and one hour ago, as the embedded runtime leaves its index."""
    index = EdgeIndex(home / "index")
    index.ensure_collection(CollectionSpec(name="chunks_v1", dense_dim=DIM))
    index.switch_alias(ALIAS, "chunks_v1")
    now = utc_now()
    for event, at in (
        (make_event(version=1, texts=["a", "b", "c"]), now - timedelta(days=2)),
        (make_event(version=2, texts=["a"]), now - timedelta(days=2)),  # b, c soft-deleted long ago
        (make_event(version=3, texts=["d"]), now - timedelta(hours=1)),  # a soft-deleted just now
    ):
        index_event(event, index=index, collection=ALIAS, now=at)
    index.close()


def _points(home: Path) -> int:
    index = EdgeIndex(home / "index")
    try:
        return index.count(ALIAS, IndexFilter(tenant="acme", include_deleted=True))
    finally:
        index.close()


def test_compact_reports_and_removes_what_is_due(
    tmp_path: Path, postgres_url: str, pg_schema: str, pg: psycopg.Connection[Any]
) -> None:
    home = tmp_path / "home"
    _home_with_index(home)
    PostgresGraphStore(pg).ensure_schema()
    pg.execute("INSERT INTO graph_entities VALUES ('acme', 'org:ghost', 'org', 'Ghost', 'ghost')")
    env = {"HEADWATER_DATABASE_URL": postgres_url, "HEADWATER_DATABASE_SCHEMA": pg_schema}

    dry = runner.invoke(app, ["compact", "--home", str(home), "--dry-run", "--json"], env=env)
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)["index"]
    assert (report["collection"], report["due"], report["hard_deleted"]) == ("chunks_v1", 2, 0)
    assert _points(home) == 4

    done = runner.invoke(app, ["compact", "--home", str(home), "--json"], env=env)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert (result["index"]["hard_deleted"], result["index"]["kept_recent_deleted"]) == (2, 1)
    assert result["graph"] == [{"tenant": "acme", "support": 0, "relations": 0, "entities": 1}]
    assert _points(home) == 2  # "d" live and "a" deleted an hour ago

    everything = runner.invoke(app, ["compact", "--home", str(home), "--retention", "0"], env=env)
    assert everything.exit_code == 0, everything.output
    assert "hard-deleted 1" in " ".join(everything.stdout.split())
    assert _points(home) == 1


_HOLDER = """
import sys, time
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.ports import IndexFilter
index = EdgeIndex(sys.argv[1])
index.count("headwater_chunks", IndexFilter(tenant="acme"))  # opens the shard and its WAL
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_compact_refuses_an_index_a_running_process_holds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _home_with_index(home)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home / "index")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        result = runner.invoke(app, ["compact", "--home", str(home), "--no-graph"])
    finally:
        holder.communicate(input="", timeout=30)

    assert result.exit_code == 1
    assert "one process at a time" in " ".join(result.output.split())
    assert _points(home) == 4  # nothing was touched


def test_compact_refuses_a_home_without_an_index(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compact", "--home", str(tmp_path / "nowhere"), "--no-graph"])
    assert result.exit_code == 1
    assert "no index" in " ".join(result.output.split())
    assert not (tmp_path / "nowhere").exists()
