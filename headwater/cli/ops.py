"""Operator commands: `replay`, `dlq list|show|redrive` and `lag` on the distributed runtime, and
`compact`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from headwater.config import KafkaSettings
from headwater.operations import InvalidRequest, OperationError
from headwater.operations.dlq import (
    Action,
    LetterFilter,
    ListedLetter,
    RedriveReport,
    list_letters,
    redrive,
    show_letter,
)
from headwater.operations.lag import GroupLag, measure_lag
from headwater.operations.records import Position, Scope, parse_instant
from headwater.operations.replay import (
    FromBeginning,
    FromOffset,
    FromTime,
    ReplayFrom,
    ReplayRequest,
    RepublishReport,
    ResetReport,
)
from headwater.operations.replay import replay as run_replay
from schemas.topics import STAGES

if TYPE_CHECKING:
    from headwater.config import HeadwaterSettings
    from headwater.operations.compaction import CompactionRun
    from services.indexer.ports import VectorIndex

__all__ = ["compact", "dlq_app", "lag", "replay"]

Stage = StrEnum("Stage", {name.upper(): name for name in STAGES})  # type: ignore[misc]

dlq_app = typer.Typer(
    no_args_is_help=True, help="Inspect dead letters and redrive them to their stage once the cause is fixed."
)
out = Console()
err = Console(stderr=True)
_T = TypeVar("_T")

BootstrapOpt = Annotated[
    str | None,
    typer.Option("--bootstrap-servers", help="Kafka brokers (default: HEADWATER_KAFKA_BOOTSTRAP_SERVERS)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="only this tenant's documents")]
DocumentsOpt = Annotated[
    list[str] | None, typer.Option("--document-id", help="only these document ids (repeatable)")
]
ErrorTypeOpt = Annotated[str | None, typer.Option("--error-type", help="only letters with this error type")]


def _settings(bootstrap_servers: str | None) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap_servers) if bootstrap_servers else KafkaSettings()


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run an operation; its errors become a message and a non-zero exit, never a traceback."""
    try:
        return asyncio.run(coro)
    except InvalidRequest as exc:
        raise typer.BadParameter(str(exc)) from None
    except OperationError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@contextmanager
def _bad_parameters() -> Iterator[None]:
    try:
        yield
    except InvalidRequest as exc:
        raise typer.BadParameter(str(exc)) from None


def _when(millis: float | datetime) -> str:
    instant = millis if isinstance(millis, datetime) else datetime.fromtimestamp(millis / 1000, UTC)
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---- replay ---------------------------------------------------------------------------------------


def replay(
    stage: Annotated[Stage, typer.Option("--stage", help="the stage whose input is consumed again")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="from the log start")] = False,
    from_offset: Annotated[
        int | None, typer.Option("--from-offset", help="from this offset in every partition")
    ] = None,
    from_time: Annotated[
        str | None, typer.Option("--from-time", help="from the first record at or after this ISO 8601 time")
    ] = None,
    to_time: Annotated[
        str | None, typer.Option("--to-time", help="scoped replays: stop before records from this time on")
    ] = None,
    tenant: TenantOpt = None,
    document_id: DocumentsOpt = None,
    into_group: Annotated[
        str | None, typer.Option("--into-group", help="position this (new) group instead of the stage's")
    ] = None,
    partition: Annotated[list[int] | None, typer.Option("--partition", help="only these partitions")] = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="seconds to wait for the group's members to leave")
    ] = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the plan, change nothing")] = False,
    as_json: JsonOpt = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Consume a stage's input again from an offset or a time.

    Unscoped: moves the committed offsets of the stage's group (stop it first) or of a new group.
    With --tenant/--document-id: copies the matching records to the end of the topic instead,
    so the running stage reprocesses just those (e.g. re-embed one tenant).
    Stages are idempotent, so a replay only costs time.
    """
    starts = [from_beginning, from_offset is not None, from_time is not None]
    if sum(starts) != 1:
        raise typer.BadParameter("give exactly one of --from-beginning, --from-offset, --from-time")
    with _bad_parameters():
        start: ReplayFrom = (
            FromBeginning()
            if from_beginning
            else FromOffset(from_offset)
            if from_offset is not None
            else FromTime(parse_instant(str(from_time)))
        )
        request = ReplayRequest(
            stage=stage.value,
            start=start,
            until=parse_instant(to_time) if to_time else None,
            scope=Scope.of(tenant=tenant, document_ids=document_id or ()),
            into_group=into_group,
            partitions=tuple(partition or ()),
            dry_run=dry_run,
            wait_s=wait,
        )
        request.validate()
    report = _run(run_replay(_settings(bootstrap_servers), request))
    if isinstance(report, ResetReport):
        _print_reset(report, as_json=as_json)
    else:
        _print_republish(report, as_json=as_json)
        if report.failed:
            raise typer.Exit(1)


def _print_reset(report: ResetReport, *, as_json: bool) -> None:
    if as_json:
        moves = [
            {"partition": m.partition, "before": m.before, "after": m.after, "log_end": m.log_end}
            for m in report.moves
        ]
        out.print_json(
            data={
                "group": report.group,
                "topic": report.topic,
                "applied": report.applied,
                "partitions": moves,
            }
        )
        return
    table = Table(title=f"{report.group} on {report.topic}", header_style="bold")
    for column in ("partition", "committed before", "committed now", "log end", "to reprocess"):
        table.add_column(column, justify="right")
    for move in report.moves:
        before = "—" if move.before is None else str(move.before)
        table.add_row(str(move.partition), before, str(move.after), str(move.log_end), str(move.to_reprocess))
    out.print(table)
    total = sum(move.to_reprocess for move in report.moves)
    if report.applied:
        out.print(f"Committed. The group reprocesses {total} records when its consumers start.")
    else:
        note = ""
        if report.group_members:
            note = (
                f" (group {report.group_state} with {report.group_members} members: stop it before applying)"
            )
        out.print(f"Dry run: nothing changed; {total} records would be reprocessed{note}.")


def _print_republish(report: RepublishReport, *, as_json: bool) -> None:
    counts = {
        "scanned": report.scanned,
        "matched": report.matched,
        "republished": report.republished,
        "tombstones_skipped": report.tombstones,
        "failed": len(report.failed),
    }
    if as_json:
        ranges = {str(p): list(r) for p, r in report.ranges.items()}
        out.print_json(data={"topic": report.topic, "applied": report.applied, "ranges": ranges, **counts})
        return
    out.print(
        f"{report.topic}, {report.scope}: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
    )
    for position, error in report.failed[:20]:
        err.print(f"[red]not republished: {position}: {error}[/]")
    if report.failed:
        err.print("Run the same replay again: records processed twice change nothing.")
    if not report.applied:
        out.print("Dry run: nothing was published.")


# ---- lag ------------------------------------------------------------------------------------------


def lag(
    group: Annotated[
        list[str] | None, typer.Option("--group", help="these groups (repeatable; default: every stage's)")
    ] = None,
    as_json: JsonOpt = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Per consumer group and partition: committed offset, log end offset and the lag between them."""
    groups = _run(measure_lag(_settings(bootstrap_servers), group or None))
    if as_json:
        out.print_json(data=[g.as_dict() for g in groups])
        return
    _print_lag(groups)


def _print_lag(groups: list[GroupLag]) -> None:
    table = Table(header_style="bold")
    table.add_column("group")
    table.add_column("state")
    table.add_column("topic")
    for column in ("partition", "committed", "log end", "lag"):
        table.add_column(column, justify="right")
    for entry in groups:
        state = f"{entry.state} ({entry.members} members)"
        if not entry.partitions:
            table.add_row(entry.group, state, "—", "", "", "", "")
        for row in entry.partitions:
            committed = "—" if row.committed is None else str(row.committed)
            table.add_row(
                entry.group, state, row.topic, str(row.partition), committed, str(row.log_end), str(row.lag)
            )
            state = ""
        table.add_section()
    out.print(table)
    out.print("  ".join(f"{g.group}: {g.total}" for g in groups))


# ---- dead letters ---------------------------------------------------------------------------------


def _letter_filter(
    *, error_type: str | None, tenant: str | None, document_ids: list[str] | None, offsets: list[str] | None
) -> LetterFilter:
    with _bad_parameters():
        positions = frozenset(Position.parse(text) for text in offsets or ())
    return LetterFilter(
        error_type=error_type,
        scope=Scope.of(tenant=tenant, document_ids=document_ids or ()),
        positions=positions,
    )


def _summary(entry: ListedLetter) -> dict[str, Any]:
    letter, body = entry.letter, entry.letter.letter
    document = letter.document
    return {
        "stage": letter.stage,
        "partition": letter.position.partition,
        "offset": letter.position.offset,
        "failed_at": (
            body.failed_at if body else datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC)
        ).isoformat(),
        "document": None if document is None else str(document),
        "error_type": body.error_type if body else None,
        "reason": body.reason if body else letter.problem,
        "attempts": body.attempts if body else None,
        "status": entry.status,
    }


@dlq_app.command(name="list")
def list_command(
    stage: Annotated[Stage | None, typer.Option("--stage", help="one stage (default: every stage)")] = None,
    error_type: ErrorTypeOpt = None,
    tenant: TenantOpt = None,
    document_id: DocumentsOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="show the newest N (0: all)")] = 50,
    as_json: JsonOpt = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Dead letters: position, failure time, document, error type and reason, whether redriven."""
    selection = _letter_filter(error_type=error_type, tenant=tenant, document_ids=document_id, offsets=None)
    stages = [stage.value] if stage else list(STAGES)
    letters = _run(list_letters(_settings(bootstrap_servers), stages=stages, selection=selection))
    letters.sort(key=lambda entry: entry.letter.timestamp_ms)
    shown = letters[-limit:] if limit else letters
    if as_json:
        out.print_json(data=[_summary(entry) for entry in shown])
        return
    table = Table(header_style="bold", expand=True)
    for column in ("stage", "at", "failed at (UTC)", "document", "error", "tries", "reason", "status"):
        table.add_column(column, overflow="fold")
    for entry in shown:
        row = _summary(entry)
        reason = str(row["reason"] or "")
        table.add_row(
            row["stage"],
            f"{row['partition']}:{row['offset']}",
            _when(
                entry.letter.timestamp_ms if entry.letter.letter is None else entry.letter.letter.failed_at
            ),
            row["document"] or "?",
            row["error_type"] or "[red]unreadable[/]",
            str(row["attempts"] or ""),
            reason[:80] + ("…" if len(reason) > 80 else ""),
            entry.status,
        )
    out.print(table)
    pending = sum(1 for entry in letters if entry.status == "pending")
    out.print(f"{len(letters)} letters ({len(shown)} shown), {pending} pending redrive")


@dlq_app.command(name="show")
def show_command(
    stage: Annotated[Stage, typer.Argument(help="the stage whose dead letter to show")],
    at: Annotated[str, typer.Argument(metavar="PARTITION:OFFSET", help="as `dlq list` prints it")],
    payload: Annotated[
        bool,
        typer.Option("--payload", help="include the original message; before redaction it may hold PII"),
    ] = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """One dead letter in full (its original message only with --payload)."""
    with _bad_parameters():
        position = Position.parse(at)
    entry = _run(show_letter(_settings(bootstrap_servers), stage=stage.value, position=position))
    letter = entry.letter
    shown: dict[str, Any] = {"dead_letter": letter.address, "status": entry.status}
    if letter.letter is None:
        shown |= {
            "problem": letter.problem,
            "key": None if letter.key is None else letter.key.decode(errors="replace"),
        }
        out.print_json(data=shown)
        return
    shown |= letter.letter.model_dump(mode="json", exclude={"payload_base64"})
    if payload:
        raw = letter.payload or b""
        try:
            shown["payload"] = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            shown["payload_base64"] = letter.letter.payload_base64
    out.print_json(data=shown)


@dlq_app.command(name="redrive")
def redrive_command(
    stage: Annotated[Stage, typer.Option("--stage", help="the stage whose dead letters to redrive")],
    error_type: ErrorTypeOpt = None,
    tenant: TenantOpt = None,
    document_id: DocumentsOpt = None,
    offset: Annotated[
        list[str] | None,
        typer.Option("--offset", metavar="PARTITION:OFFSET", help="only these letters (repeatable)"),
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="also letters that were redriven before (on purpose)")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be sent, send nothing")] = False,
    as_json: JsonOpt = False,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Republish dead letters to the topic they came from, once each, after their cause is fixed.

    Progress is committed to the group <group prefix>.dlq-redrive.<stage> as sends are acknowledged,
    so running the command again sends only what was not sent yet.
    With filters, letters that do not match stay pending for a later run.
    """
    selection = _letter_filter(error_type=error_type, tenant=tenant, document_ids=document_id, offsets=offset)
    report = _run(
        redrive(
            _settings(bootstrap_servers), stage=stage.value, selection=selection, again=again, dry_run=dry_run
        )
    )
    _print_redrive(report, as_json=as_json)
    if report.failed:
        raise typer.Exit(1)


def _print_redrive(report: RedriveReport, *, as_json: bool) -> None:
    counts = {action.value: report.count(action) for action in Action}
    unredrivable = [
        {"at": str(d.letter.position), "why": d.why}
        for d in report.decisions
        if d.action is Action.UNREDRIVABLE
    ]
    if as_json:
        out.print_json(
            data={
                "stage": report.stage,
                "applied": report.applied,
                "counts": counts,
                "redriven": [str(p) for p in report.redriven],
                "unredrivable": unredrivable,
                "failed": [{"at": str(p), "error": e} for p, e in report.failed],
            }
        )
        return
    out.print(f"{report.topic}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    for item in unredrivable:
        err.print(f"[yellow]cannot redrive {item['at']}: {item['why']}[/]")
    for position, error in report.failed:
        err.print(f"[red]not republished: {position}: {error}; run the redrive again[/]")
    if report.applied:
        out.print(f"Redriven {len(report.redriven)} letters; progress is kept by group {report.group}.")
    else:
        out.print(f"Dry run: {counts[Action.REDRIVE.value]} letters would be redriven; nothing was sent.")


def compact(
    home: Annotated[
        Path, typer.Option("--home", envvar="HEADWATER_HOME", help="state directory of the embedded runtime")
    ] = Path(".headwater"),
    retention: Annotated[
        float | None,
        typer.Option(
            "--retention",
            min=0,
            help="seconds a soft-deleted chunk is kept (default: HEADWATER_INDEXER_"
            "COMPACT_RETENTION_S, 24 h)",
        ),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="collection or alias (default: the runtime's alias)")
    ] = None,
    graph: Annotated[
        bool, typer.Option("--graph/--no-graph", help="also compact the knowledge graph")
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what is due; delete nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Hard-delete chunks soft-deleted longer ago than the retention (tombstones stay) and remove graph
    entities left without support."""
    from headwater.config import HeadwaterSettings
    from headwater.operations.compaction import postgres_graph, run_compaction
    from headwater.runtime.state import state_connector
    from services.graph_builder.errors import GraphBuilderError
    from services.indexer.config import CompactionSettings
    from services.indexer.errors import IndexerError, IndexUnavailable

    settings = HeadwaterSettings(home=home)
    defaults = CompactionSettings()
    policy = defaults if retention is None else defaults.model_copy(update={"compact_retention_s": retention})
    index = _open_index(settings)
    opener = None
    if graph and not dry_run:
        opener = postgres_graph(state_connector(settings))
    try:
        done = run_compaction(
            index=index,
            collection=collection or settings.collection_alias,
            graph=opener,
            settings=policy,
            dry_run=dry_run,
        )
    except IndexUnavailable as exc:
        err.print(f"[red]the index is unavailable:[/] {exc}")
        if not settings.qdrant_url:
            err.print(
                "The embedded index opens in one process at a time: a running process on this home "
                "compacts it itself every HEADWATER_INDEXER_COMPACT_INTERVAL_S seconds."
            )
        raise typer.Exit(1) from None
    except (IndexerError, GraphBuilderError) as exc:
        err.print(f"[red]compaction failed:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        index.close()
    if as_json:
        typer.echo(json.dumps(_as_dict(done), default=str, indent=2))
    else:
        _print(done)


def _open_index(settings: HeadwaterSettings) -> VectorIndex:
    """The Qdrant server when configured, else the embedded index of `--home`."""
    from headwater.runtime.parts import open_index

    if not settings.qdrant_url and not settings.index_dir.is_dir():  # the engine would create an empty one
        err.print(f"[red]no index at {settings.index_dir}[/] (set --home, or HEADWATER_QDRANT_URL)")
        raise typer.Exit(1)
    return open_index(settings)


def _as_dict(done: CompactionRun) -> dict[str, Any]:
    return {
        "index": asdict(done.index) if done.index is not None else None,
        "graph": [asdict(g) for g in done.graph],
    }


def _print(done: CompactionRun) -> None:
    r = done.index
    if r is not None:
        verb = "would hard-delete" if r.dry_run else "hard-deleted"
        count = r.due if r.dry_run else r.hard_deleted
        out.print(
            f"{r.collection}: {r.scanned} soft-deleted chunks, {verb} {count} "
            f"(deleted before {r.cutoff.isoformat()}), kept {r.kept_recent_deleted}; tombstones kept"
        )
    if r is not None and r.dry_run:
        out.print("graph: not compacted on a dry run")
        return
    removed = [g for g in done.graph if g.support or g.relations or g.entities]
    for g in removed:
        out.print(
            f"graph {g.tenant}: removed {g.support} support rows, {g.relations} relations, "
            f"{g.entities} entities"
        )
    if done.graph and not removed:
        out.print(f"graph: nothing to remove in {len(done.graph)} tenants")
