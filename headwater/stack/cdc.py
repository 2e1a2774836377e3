"""The CDC half of the local stack: a Kafka Connect worker beside the broker, and optionally a Postgres
to capture from. Each keeps a small state file under `<home>/stack/` so `status` and `down` find it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from headwater.stack.connect import CONNECT_MAIN, KafkaConnect, default_connect_dir, worker_ready
from headwater.stack.postgres import REPLICATION_ROLE, CdcPostgres
from headwater.stack.process import StackError, pid_runs, stop_pid

__all__ = ["CDC_DATABASE", "LocalCdc", "StackLine"]

CDC_DATABASE = "app"  # the database `--with-postgres` creates for the tables to capture


@dataclass(frozen=True)
class StackLine:
    text: str
    ok: bool


def _read(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


class LocalCdc:
    """Starts, reports on and stops the local stack's Connect worker and CDC Postgres."""

    def __init__(self, home: Path) -> None:
        self.root = home / "stack"

    @property
    def connect_state(self) -> Path:
        return self.root / "connect.json"

    @property
    def postgres_state(self) -> Path:
        return self.root / "postgres.json"

    def start_postgres(self, *, port: int | None = None) -> CdcPostgres:
        """Start (or restart) the CDC Postgres on the port it had before; create its database."""
        state = _read(self.postgres_state) or {}
        postgres = CdcPostgres(home=self.root / "postgres")
        if postgres.running() and state.get("port"):
            postgres.port = int(state["port"])
        else:
            postgres.start(port=port or state.get("port"))
        postgres.create_database(CDC_DATABASE)
        self.postgres_state.write_text(
            json.dumps({"port": postgres.port, "database": CDC_DATABASE}, indent=2)
        )
        return postgres

    def start_connect(self, bootstrap_servers: str, *, env: dict[str, str]) -> str:
        """Start the worker unless it runs; returns its REST URL."""
        state = _read(self.connect_state)
        if state is not None and state.get("pid") and pid_runs(int(state["pid"]), cmdline_arg=CONNECT_MAIN):
            return str(state["url"])
        worker = KafkaConnect(bootstrap_servers=bootstrap_servers, cache_dir=default_connect_dir())
        worker.fetch_jars()
        worker.start(self.root / "connect", port=state.get("port") if state else None, detach=True, env=env)
        self.connect_state.write_text(
            json.dumps({"pid": worker.pid, "url": worker.url, "port": worker.port}, indent=2)
        )
        return worker.url

    def status(self) -> list[StackLine]:
        lines = []
        connect = _read(self.connect_state)
        if connect is None or not connect.get("pid"):
            lines.append(StackLine("connect: not running", True))
        elif not pid_runs(int(connect["pid"]), cmdline_arg=CONNECT_MAIN):
            lines.append(StackLine(f"connect: process {connect['pid']} is gone", False))
        else:
            ready, why = worker_ready(str(connect["url"]))
            names: list[str] = []
            if ready:
                try:
                    names = httpx.get(f"{connect['url']}/connectors", timeout=5.0).json()
                except (httpx.HTTPError, ValueError):
                    ready, why = False, "GET /connectors failed"
            text = (
                f"connect: up at {connect['url']} (pid {connect['pid']}, {len(names)} connector(s))"
                if ready
                else f"connect: pid {connect['pid']} runs but is not ready ({why})"
            )
            lines.append(StackLine(text, ready))
        postgres = _read(self.postgres_state)
        if postgres is not None:
            server = CdcPostgres(home=self.root / "postgres")
            if server.running():
                url = f"postgresql://{REPLICATION_ROLE}@127.0.0.1:{postgres['port']}/{postgres['database']}"
                lines.append(StackLine(f"postgres (CDC source): up at {url}", True))
            else:
                lines.append(StackLine("postgres (CDC source): stopped", False))
        return lines

    def stop(self) -> list[str]:
        """Stop the worker (its connectors' offsets are flushed), then the CDC Postgres."""
        done = []
        connect = _read(self.connect_state)
        if connect is not None and connect.get("pid"):
            stop_pid(int(connect["pid"]), cmdline_arg=CONNECT_MAIN, timeout_s=30.0)
            # The port is kept: connector configs and clients keep working after the next `up`.
            self.connect_state.write_text(json.dumps({k: v for k, v in connect.items() if k != "pid"}))
            done.append("connect: stopped")
        if self.postgres_state.exists():
            try:
                CdcPostgres(home=self.root / "postgres").stop()
            except StackError as exc:
                done.append(f"postgres: {exc}")
            else:
                done.append("postgres (CDC source): stopped")
        return done
