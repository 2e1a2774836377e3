"""`headwater connectors apply|status|delete`: the configs in `infra/connectors/` on a Connect worker."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from headwater.stack.connectors import (
    ConnectClient,
    ConnectorError,
    change_topics,
    connector_files,
    ensure_change_topics,
)

__all__ = ["connectors_app"]

connectors_app = typer.Typer(
    no_args_is_help=True, help="Apply the Kafka Connect connectors of infra/connectors/ (Debezium CDC)."
)
_out = Console()
_err = Console(stderr=True)
DEFAULT_URL = "http://127.0.0.1:8083"

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="HEADWATER_CONNECT_URL",
        help=f"Connect REST API (default: the local stack's worker, else {DEFAULT_URL})",
    ),
]
HomeOpt = Annotated[Path, typer.Option("--home", envvar="HEADWATER_HOME", help="state directory")]
DirOpt = Annotated[Path, typer.Option("--dir", help="folder of <connector name>.json configs")]
NamesOpt = Annotated[list[str] | None, typer.Option("--name", help="only these connectors (repeatable)")]
TimeoutOpt = Annotated[float, typer.Option("--timeout-s", min=0, help="how long to wait for RUNNING")]


def _url(url: str | None, home: Path) -> str:
    if url:
        return url
    state = home / "stack" / "connect.json"
    if state.exists():
        return str(json.loads(state.read_text())["url"])
    return DEFAULT_URL


@contextmanager
def _client(url: str | None, home: Path) -> Iterator[ConnectClient]:
    client = ConnectClient(_url(url, home))
    try:
        yield client
    except ConnectorError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        client.close()


def _tasks(status: dict[str, Any] | None) -> str:
    if status is None:
        return "-"
    return ", ".join(f"{t['id']}:{t['state']}" for t in status.get("tasks", [])) or "no tasks"


@connectors_app.command()
def apply(
    url: UrlOpt = None,
    home: HomeOpt = Path(".headwater"),
    folder: DirOpt = Path("infra/connectors"),
    name: NamesOpt = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            help="Kafka, to create the change topics (default: HEADWATER_KAFKA_BOOTSTRAP_SERVERS)",
        ),
    ] = None,
    create_topics: Annotated[
        bool, typer.Option(help="create the change topics first, so consumers can subscribe at once")
    ] = True,
    timeout_s: TimeoutOpt = 120.0,
) -> None:
    """Create or update each connector (unchanged ones are left alone), then wait until it runs.

    `${NAME}` / `${NAME:-default}` in a file come from this environment; `${env:NAME}` is resolved by
    the worker, from its own environment (secrets)."""
    from headwater.config import KafkaSettings

    with _client(url, home) as client:
        for file in connector_files(folder, names=name):
            config = file.render(os.environ)
            if create_topics:
                bootstrap = bootstrap_servers or KafkaSettings().bootstrap_servers
                created = asyncio.run(ensure_change_topics(bootstrap, change_topics(config)))
                if created:
                    _err.print(f"{file.name}: created topics {', '.join(created)}")
            outcome = client.apply(file.name, config)
            status = client.wait_running(file.name, timeout_s=timeout_s)
            _out.print(f"{file.name}: {outcome}, {status['connector']['state']} (tasks {_tasks(status)})")


@connectors_app.command()
def status(
    url: UrlOpt = None,
    home: HomeOpt = Path(".headwater"),
    name: NamesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print Connect's status objects")] = False,
) -> None:
    """State of every connector on the worker (or of `--name`); exit 1 unless all of them run."""
    with _client(url, home) as client:
        names = name or client.connectors()
        statuses = {n: client.status(n) for n in names}
    if as_json:
        _out.print_json(json.dumps(statuses))
    else:
        table = Table("connector", "state", "tasks", "worker")
        for n, s in statuses.items():
            state = s["connector"]["state"] if s else "NOT FOUND"
            table.add_row(n, state, _tasks(s), s["connector"].get("worker_id", "") if s else "")
        _out.print(table)
    running = [
        s is not None
        and s["connector"]["state"] == "RUNNING"
        and all(t["state"] == "RUNNING" for t in s["tasks"])
        for s in statuses.values()
    ]
    if not all(running):
        raise typer.Exit(1)


@connectors_app.command()
def delete(
    name: Annotated[list[str], typer.Argument(help="connectors to remove")],
    url: UrlOpt = None,
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Remove connectors. Their replication slots stay in Postgres and keep WAL until dropped."""
    with _client(url, home) as client:
        for n in name:
            config = client.config(n)
            removed = client.delete(n)
            _out.print(f"{n}: {'deleted' if removed else 'not found'}")
            if removed and config and config.get("slot.name"):
                _err.print(
                    f"  drop its replication slot unless another connector takes it over:\n"
                    f"  SELECT pg_drop_replication_slot('{config['slot.name']}');"
                )
