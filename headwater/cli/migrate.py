"""`headwater migrate start|status|compare|cutover|rollback|finish|abort`: move an index to a new
embedding model beside the old one, compare, cut over by alias, roll back at will."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from headwater.operations.migrate import SideBySide
    from schemas import SearchPage, SearchRequest
    from services.indexer.migration.plan import Migration
    from services.indexer.migration.store import MigrationStore

migrate_app = typer.Typer(
    no_args_is_help=True,
    help="Embedding-model migration: build a new index beside the old one, compare, cut over, roll back.",
)
_out = Console()
_err = Console(stderr=True)

HomeOpt = Annotated[
    Path, typer.Option("--home", envvar="HEADWATER_HOME", help="state directory of the embedded runtime")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
EvalSetOpt = Annotated[
    Path | None,
    typer.Option(
        "--eval-set", help="JSON list of {tenant, query, relevant} (default: HEADWATER_MIGRATION_EVAL_SET)"
    ),
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="query gateway (default: HEADWATER_MIGRATION_GATEWAY_URL)")
]
NoteOpt = Annotated[str, typer.Option("--note", help="why, recorded with the decision")]
WaitOpt = Annotated[
    float | None,
    typer.Option(
        "--wait", help="seconds to wait for the index owner to apply it (default: HEADWATER_MIGRATION_WAIT_S)"
    ),
]


@contextmanager
def _store(home: Path) -> Iterator[MigrationStore]:
    """The migration state of the runtime at `home`: HEADWATER_DATABASE_URL, else its embedded Postgres."""
    from headwater.cli.common import state_store
    from services.indexer.migration.store import MigrationStore

    with state_store(home, MigrationStore) as store:
        yield store


def _alias() -> str:
    from headwater.config import HeadwaterSettings

    return HeadwaterSettings().collection_alias


@contextmanager
def _errors() -> Iterator[None]:
    from services.embedder.errors import UnknownProfile
    from services.indexer.errors import MigrationError

    try:
        yield
    except (MigrationError, UnknownProfile) as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _kafka_records(migration: Migration) -> tuple[int, int] | None:
    """(records read, records in the topic) of the migration's consumer group (distributed runtime);
    None when no broker answers."""
    from headwater.config import KafkaSettings
    from headwater.operations.errors import OperationError
    from headwater.operations.lag import measure_lag
    from headwater.operations.names import migration_group

    kafka = KafkaSettings()
    try:
        (group,) = asyncio.run(measure_lag(kafka, [migration_group(kafka, migration.id)]))
    except (OperationError, OSError) as exc:
        _err.print(f"[yellow]backfill lag unknown: {exc}[/]")
        return None
    if not group.partitions:
        return None
    total = sum(p.log_end - p.log_start for p in group.partitions)
    return total - group.total, total


def _kafka_lag(migration: Migration) -> int | None:
    records = _kafka_records(migration)
    return None if records is None else records[1] - records[0]


def _http_search(url: str, api_key: str | None) -> Any:
    import httpx

    from schemas import SearchPage
    from services.indexer.errors import MigrationError

    client = httpx.Client(base_url=url, timeout=60.0)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    def search(request: SearchRequest) -> SearchPage:
        try:
            response = client.post(
                "/v1/search", content=request.model_dump_json(exclude_none=True), headers=headers
            )
        except httpx.HTTPError as exc:
            raise MigrationError(f"cannot reach the query gateway at {url}: {exc}") from None
        if response.status_code != 200:
            raise MigrationError(
                f"the gateway at {url} answered {response.status_code}: {response.text[:300]}"
            )
        return SearchPage.model_validate_json(response.content)

    return search


def _compare(migration: Migration, eval_set: Path | None, url: str | None) -> SideBySide | None:
    from headwater.config import MigrationSettings
    from headwater.operations.migrate import compare, load_eval_set
    from schemas.search import SearchMode

    settings = MigrationSettings()
    path = eval_set or settings.eval_set
    if path is None:
        return None
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return compare(
        _http_search(url or settings.gateway_url, key),
        load_eval_set(path),
        source=migration.source.name,
        target=migration.target.name,
        mode=SearchMode(settings.eval_mode),
    )


def _applied(store: MigrationStore, migration: Migration, wait: float | None) -> Migration:
    from headwater.config import MigrationSettings
    from headwater.operations.migrate import wait_applied

    done = wait_applied(store, migration, timeout_s=MigrationSettings().wait_s if wait is None else wait)
    if done.applied_state is not done.state:
        _err.print(
            f"[yellow]recorded as {done.state.value}; no index owner has applied it yet (is the runtime,"
            " index node or indexer running?). It applies when one starts.[/]"
        )
    return done


@migrate_app.command()
def start(
    model: Annotated[str, typer.Option("--model", help="profile name (see `headwater migrate profiles`)")],
    home: HomeOpt = Path(".headwater"),
    wait: WaitOpt = None,
) -> None:
    """Create the next collection for MODEL and start the backfill beside the current one."""
    from headwater.kernel.model_files import offline
    from headwater.operations.migrate import start as start_migration
    from services.embedder.config import EmbedderSettings
    from services.embedder.factory import build_backend, build_profile_backend
    from services.embedder.profiles import current_profile, load_profiles, resolve_profile

    offline()
    embedder = EmbedderSettings()
    with _errors(), _store(home) as store:
        known = load_profiles(embedder.profiles_file)
        profile = resolve_profile(model, known)
        backend = build_profile_backend(profile, embedder)  # dimension and model id come from the model
        configured = (current_profile(embedder, known), build_backend(embedder).model_id)
        migration = start_migration(
            store, alias=_alias(), profile=profile, backend=backend, configured=configured
        )
        _out.print(
            f"migration {migration.id}: {migration.source.name} → {migration.target.name}"
            f" ({backend.model_id}, {backend.dimension} dimensions); readers stay on the source"
        )
        _applied(store, migration, wait)


@migrate_app.command()
def status(home: HomeOpt = Path(".headwater"), as_json: JsonOpt = False) -> None:
    """State, backfill progress (backfilled/total, lag, ETA) and the decisions taken."""
    from headwater.operations.migrate import backfill_lag, copy_scanned, progress, require

    with _errors(), _store(home) as store:
        migration = require(store, _alias())
        active = migration.state.active
        records = _kafka_records(migration) if active and not copy_scanned(migration) else None
        lag = backfill_lag(migration, lambda _: None if records is None else records[1] - records[0])
        report = progress(migration, lag if active else 0, records=records)
    if as_json:
        _out.print_json(json.dumps(report, default=str))
        return
    table = Table(show_header=False)
    for key in (
        "id",
        "state",
        "applied_state",
        "reads",
        "backfilled",
        "total",
        "lag",
        "eta_s",
        "embedded_texts",
    ):
        table.add_row(key, str(report[key]))
    table.add_row("source", f"{report['source']['collection']} ({report['source']['model']})")
    table.add_row("target", f"{report['target']['collection']} ({report['target']['model']})")
    _out.print(table)
    for decision in report["decisions"]:
        _out.print(json.dumps(decision, default=str))


@migrate_app.command(name="compare")
def compare_cmd(
    home: HomeOpt = Path(".headwater"),
    eval_set: EvalSetOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the eval set against both collections side by side (nDCG@10 by document)."""
    from headwater.operations.migrate import require

    with _errors(), _store(home) as store:
        migration = require(store, _alias())
        scores = _compare(migration, eval_set, url)
    if scores is None:
        _err.print("[red]no eval set: pass --eval-set or set HEADWATER_MIGRATION_EVAL_SET[/]")
        raise typer.Exit(2)
    if as_json:
        _out.print_json(json.dumps(scores.as_dict()))
        return
    table = Table("", migration.source.name, migration.target.name)
    table.add_row("nDCG@10", f"{scores.source_score:.4f}", f"{scores.target_score:.4f}")
    _out.print(table)
    _out.print(
        f"{scores.queries} queries: target better on {scores.better}, worse on {scores.worse};"
        f" top-10 overlap {scores.overlap:.2f}"
    )


@migrate_app.command()
def cutover(
    home: HomeOpt = Path(".headwater"),
    eval_set: EvalSetOpt = None,
    url: UrlOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="cut over even if the gate refuses (recorded)")
    ] = False,
    wait: WaitOpt = None,
) -> None:
    """Point readers at the new collection: only at zero backfill lag and a score at least the old one's."""
    from headwater.operations.migrate import backfill_lag, require
    from headwater.operations.migrate import cutover as run_cutover

    with _errors(), _store(home) as store:
        migration = require(store, _alias())
        lag = backfill_lag(migration, _kafka_lag)
        scores = _compare(migration, eval_set, url)
        decision, migration = run_cutover(store, migration, lag=lag, scores=scores, force=force)
        if not decision.allowed:
            _err.print(
                "[red]cutover refused:[/] " + "; ".join(decision.reasons) + " (use --force to override)"
            )
            raise typer.Exit(1)
        _out.print(f"readers move to {migration.target.name}" + (" (forced)" if decision.forced else ""))
        _applied(store, migration, wait)


def _simple(name: str, done: str) -> Any:
    def run(home: HomeOpt = Path(".headwater"), note: NoteOpt = "", wait: WaitOpt = None) -> None:
        from headwater.operations.migrate import command, require

        with _errors(), _store(home) as store:
            migration = command(store, require(store, _alias()), name, note=note)
            _out.print(done.format(source=migration.source.name, target=migration.target.name))
            _applied(store, migration, wait)

    return run


migrate_app.command(name="rollback", help="Point readers back at the old collection; both stay written.")(
    _simple("rollback", "readers move back to {source}; {target} stays in sync for another cutover")
)
migrate_app.command(name="finish", help="Retire the old collection (after cutover); no rollback after this.")(
    _simple("finish", "{source} is retired; {target} is the index")
)
migrate_app.command(name="abort", help="Drop the new collection (before cutover, or after a rollback).")(
    _simple("abort", "{target} is dropped; {source} stays the index")
)


@migrate_app.command()
def profiles(as_json: JsonOpt = False) -> None:
    """The embedding profiles this installation knows (built in and HEADWATER_EMBEDDER_PROFILES_FILE)."""
    from services.embedder.config import EmbedderSettings
    from services.embedder.profiles import load_profiles

    known = load_profiles(EmbedderSettings().profiles_file)
    if as_json:
        _out.print_json(json.dumps({n: p.model_dump(exclude_none=True) for n, p in known.items()}))
        return
    table = Table("profile", "backend", "dimensions", "description")
    for name, p in sorted(known.items()):
        table.add_row(name, p.backend, str(p.dimensions or "model's"), p.description)
    _out.print(table)
