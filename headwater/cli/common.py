"""What every command shares: consoles, common options, logging, the embedded runtime opened for one
command, and the runtime's state stores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from headwater.kernel.model_files import offline

if TYPE_CHECKING:  # imported lazily at run time: `headwater --help` must not load models
    from headwater.runtime.embedded import EmbeddedHeadwater
    from schemas import IngestDocument, SearchPage

console = Console(stderr=True)
out = Console()

HomeOpt = Annotated[
    Path, typer.Option("--home", envvar="HEADWATER_HOME", help="state directory of the embedded runtime")
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="tenant the documents belong to")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def configure_logging(verbose: bool = False) -> None:
    from headwater.observability.logs import configure_logging

    configure_logging(
        service="headwater",
        verbose=verbose,
        default_format="text",  # HEADWATER_LOG_FORMAT=json for JSON lines
        quiet=("presidio-analyzer", "presidio-anonymizer", "sentence_transformers", "httpx"),
    )


@contextmanager
def running(home: Path, **settings_overrides: object) -> Iterator[EmbeddedHeadwater]:
    from headwater.config import HeadwaterSettings
    from headwater.observability import tracing
    from headwater.runtime.embedded import EmbeddedHeadwater, build

    offline()
    tracing.configure("embedded")  # a no-op unless OTEL_EXPORTER_OTLP_ENDPOINT or HEADWATER_TRACES_FILE
    settings = HeadwaterSettings(home=home, **settings_overrides)  # type: ignore[arg-type]
    with console.status("Loading models and opening the index…"):
        runtime = EmbeddedHeadwater(build(settings))
    with runtime:
        yield runtime


def ingest_with_progress(
    runtime: EmbeddedHeadwater, commands: Iterable[IngestDocument], *, total: int
) -> float:
    """Accept every command, then show the pipeline draining; returns the elapsed seconds."""
    started = time.perf_counter()
    base = runtime.completed
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        accepted = progress.add_task("accepted", total=total)
        indexed = progress.add_task("indexed ", total=total)
        for command in commands:
            runtime.intake.accept(command)
            progress.advance(accepted)
            progress.update(indexed, completed=runtime.completed - base)
        while runtime.completed - base < total:
            progress.update(indexed, completed=runtime.completed - base)
            time.sleep(0.2)
        progress.update(indexed, completed=total)
    runtime.wait_idle()
    return time.perf_counter() - started


def print_page(page: SearchPage, *, show: int = 5) -> None:
    table = Table(show_header=True, header_style="bold", expand=True)
    table.add_column("#", width=2)
    table.add_column("document", overflow="fold", ratio=2)
    table.add_column("score", width=6)
    table.add_column("ranks", width=10, no_wrap=True)
    table.add_column("text", ratio=6)
    for rank, hit in enumerate(page.hits[:show], start=1):
        # Each retriever's rank for the hit, e.g. "dense 1 / sparse 3".
        found = "\n".join(f"{name} {r}" for name, r in sorted(hit.retrievers.items()))
        snippet = hit.text.replace("\n", " ")
        table.add_row(
            str(rank),
            hit.title or hit.document_id,
            f"{hit.score:.3f}",
            found,
            snippet[:220] + ("…" if len(snippet) > 220 else ""),
        )
    out.print(table)


class _Store(Protocol):
    def ensure_schema(self) -> None: ...

    def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=_Store)


@contextmanager
def state_store(
    home: Path, make: Callable[[Callable[[], psycopg.Connection[Any]]], StoreT]
) -> Iterator[StoreT]:
    """A store of the runtime at `home` (`HEADWATER_DATABASE_URL`, else its embedded Postgres), its
    tables created if missing, closed afterwards."""
    from headwater.config import HeadwaterSettings
    from headwater.runtime.state import state_connector

    store = make(state_connector(HeadwaterSettings(home=home)))
    store.ensure_schema()
    try:
        yield store
    finally:
        store.close()


RecordT = TypeVar("RecordT")


def found(record: RecordT | None, missing: str) -> RecordT:
    """The record a store returned, else `missing` on stderr and exit status 1."""
    if record is None:
        console.print(missing)
        raise typer.Exit(1)
    return record


def show_secret_once(secret: str, *, what: str, hint: str = "") -> None:
    """A secret on stdout (so it can be piped) with the warning that it is never shown again."""
    console.print(f"Store the {what} now: it is shown once and cannot be recovered. {hint}".rstrip())
    typer.echo(secret)


def print_records(
    records: Sequence[RecordT],
    *,
    as_json: bool,
    to_json: Callable[[RecordT], dict[str, object]],
    columns: Sequence[str],
    row: Callable[[RecordT], Sequence[str]],
) -> None:
    """One JSON object per line, or a table."""
    if as_json:
        for record in records:
            typer.echo(json.dumps(to_json(record)))
        return
    table = Table(*columns)
    for record in records:
        table.add_row(*row(record))
    out.print(table)
