"""`headwater stack up|down|status`: a local Kafka broker, Kafka Connect with Debezium and optionally a
Postgres to capture from; `stack provision`: topics on any cluster. (The launchers are `headwater.stack`.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from pydantic import ValidationError

from headwater.config import KafkaSettings
from headwater.stack.cdc import CDC_DATABASE, LocalCdc
from headwater.stack.kafka import KafkaBroker, KafkaStackError, broker_alive, default_lib_dir, ping, stop_pid
from headwater.stack.postgres import REPLICATION_ROLE
from headwater.stack.topics import ProvisionReport, provision_topics

__all__ = ["stack_app"]

stack_app = typer.Typer(
    no_args_is_help=True, help="Run a local Kafka broker (KRaft) and Kafka Connect (Debezium), no Docker."
)

HomeOpt = Annotated[Path, typer.Option("--home", envvar="HEADWATER_HOME", help="state directory")]


def _state_file(home: Path) -> Path:
    return home / "stack" / "kafka.json"


def _read_state(home: Path) -> dict[str, object] | None:
    path = _state_file(home)
    if not path.exists():
        return None
    state: dict[str, object] = json.loads(path.read_text())
    return state


@stack_app.command()
def up(
    home: HomeOpt = Path(".headwater"),
    port: Annotated[int | None, typer.Option(help="broker port; a free one if omitted")] = None,
    partitions: Annotated[int, typer.Option(help="partitions per topic")] = 6,
    lib_dir: Annotated[Path | None, typer.Option(help="where the broker jars are cached")] = None,
    connect: Annotated[
        bool, typer.Option(help="also run a Kafka Connect worker with Debezium's Postgres connector")
    ] = True,
    with_postgres: Annotated[
        bool, typer.Option("--with-postgres", help="also run a Postgres (wal_level=logical) to capture from")
    ] = False,
) -> None:
    """Fetch the jars, start the broker (and Connect) in the background and provision the topics.

    Prints the broker's host:port on stdout; everything else goes to stderr."""
    state = _read_state(home)
    try:
        if state is not None and broker_alive(int(str(state["pid"]))):
            bootstrap = str(state["bootstrap_servers"])
        else:
            bootstrap = _start_broker(home, port=port, partitions=partitions, lib_dir=lib_dir)
        cdc = LocalCdc(home)
        worker_env: dict[str, str] = {}
        if with_postgres:
            postgres = cdc.start_postgres()
            worker_env["HEADWATER_CDC_DATABASE_PASSWORD"] = postgres.replication_password
            typer.echo(
                f"postgres (CDC source) on 127.0.0.1:{postgres.port}, database {CDC_DATABASE}, replication "
                f"role {REPLICATION_ROLE}: export HEADWATER_CDC_DATABASE_PORT={postgres.port}",
                err=True,
            )
        if connect:
            url = cdc.start_connect(bootstrap, env=worker_env)
            typer.echo(f"kafka connect at {url}: export HEADWATER_CONNECT_URL={url}", err=True)
    except KafkaStackError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(bootstrap)


def _start_broker(home: Path, *, port: int | None, partitions: int, lib_dir: Path | None) -> str:
    broker = KafkaBroker(lib_dir=lib_dir if lib_dir is not None else default_lib_dir())
    broker.fetch_jars()
    broker.start(home / "stack" / "kafka", port=port, detach=True)
    assert broker.process is not None
    _state_file(home).write_text(
        json.dumps({"pid": broker.process.pid, "bootstrap_servers": broker.bootstrap_servers}, indent=2)
    )
    report = asyncio.run(provision_topics(broker.bootstrap_servers, partitions=partitions))
    typer.echo(f"topics created: {len(report.created)}, already there: {len(report.existing)}", err=True)
    return broker.bootstrap_servers


@stack_app.command()
def status(home: HomeOpt = Path(".headwater")) -> None:
    """Say whether the broker, Connect and the CDC Postgres run and answer."""
    state = _read_state(home)
    if state is None:
        typer.echo("kafka: not started")
        raise typer.Exit(1)
    pid, bootstrap = int(str(state["pid"])), str(state["bootstrap_servers"])
    if not broker_alive(pid):
        typer.echo(f"kafka: process {pid} is gone")
        raise typer.Exit(1)
    try:
        brokers = asyncio.run(ping(bootstrap))
    except Exception as exc:  # any client failure means "not reachable" for a status line
        typer.echo(f"kafka: pid {pid} runs but {bootstrap} does not answer: {exc!r}")
        raise typer.Exit(1) from exc
    typer.echo(f"kafka: up at {bootstrap} (pid {pid}, {brokers} broker)")
    lines = LocalCdc(home).status()
    for line in lines:
        typer.echo(line.text)
    if not all(line.ok for line in lines):
        raise typer.Exit(1)


@stack_app.command()
def down(home: HomeOpt = Path(".headwater")) -> None:
    """Stop Connect, the CDC Postgres and the broker; their data stays under the home directory."""
    for line in LocalCdc(home).stop():
        typer.echo(line)
    state = _read_state(home)
    if state is None:
        typer.echo("kafka: not started")
        return
    stop_pid(int(str(state["pid"])))
    _state_file(home).unlink()
    typer.echo("kafka: stopped")


async def _provision_when_ready(
    bootstrap: str, *, timeout_s: float, partitions: int, replication_factor: int, prefix: str
) -> ProvisionReport:
    """Provision, retrying until `timeout_s` while the cluster does not answer or refuses the topics.

    A broker that has just started can answer before it accepts topics (no registered broker yet for the
    replication factor), so refusals are retried too; the last one is in the final error.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pause = 0.5
    while True:
        remaining = deadline - loop.time()
        try:
            return await asyncio.wait_for(
                provision_topics(
                    bootstrap, partitions=partitions, replication_factor=replication_factor, prefix=prefix
                ),
                timeout=max(remaining, 1.0),
            )
        except (KafkaError, KafkaStackError, TimeoutError) as exc:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise KafkaStackError(
                    f"could not provision topics at {bootstrap} within {timeout_s:g} s; last error: {exc}"
                ) from exc
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 5.0)


@stack_app.command()
def provision(
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="default: HEADWATER_KAFKA_BOOTSTRAP_SERVERS")
    ] = None,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="partitions per new topic; default: HEADWATER_KAFKA_PARTITIONS")
    ] = None,
    replication_factor: Annotated[
        int | None, typer.Option(min=1, help="default: HEADWATER_KAFKA_REPLICATION_FACTOR")
    ] = None,
    timeout_s: Annotated[float, typer.Option(min=0, help="how long to wait for the broker to answer")] = 60.0,
) -> None:
    """Create the missing pipeline and dead-letter topics on a running cluster; safe to re-run."""
    try:
        settings = KafkaSettings()
    except ValidationError as exc:
        typer.echo(f"invalid Kafka settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    bootstrap = bootstrap_servers or settings.bootstrap_servers
    try:
        report = asyncio.run(
            _provision_when_ready(
                bootstrap,
                timeout_s=timeout_s,
                partitions=partitions or settings.partitions,
                replication_factor=replication_factor or settings.replication_factor,
                prefix=settings.topic_prefix,
            )
        )
    except KafkaStackError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"topics created: {len(report.created)}, already there: {len(report.existing)} ({bootstrap})")
