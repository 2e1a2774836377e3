"""`headwater compact`: hard-delete chunks soft-deleted longer than the retention, and sweep the graph.

Running processes compact on their own (HEADWATER_INDEXER_COMPACT_INTERVAL_S); this command is for an
index no process holds (an embedded --home at rest) or a Qdrant server (HEADWATER_QDRANT_URL).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from headwater.config import HeadwaterSettings
    from headwater.runtime.compaction import CompactionRun
    from services.indexer.ports import VectorIndex

_err = Console(stderr=True)
_out = Console()


def compact_command(
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
    from headwater.postgres import state_connector
    from headwater.runtime.compaction import postgres_graph, run_compaction
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
        _err.print(f"[red]the index is unavailable:[/] {exc}")
        if not settings.qdrant_url:
            _err.print(
                "The embedded index opens in one process at a time: a running process on this home "
                "compacts it itself every HEADWATER_INDEXER_COMPACT_INTERVAL_S seconds."
            )
        raise typer.Exit(1) from None
    except (IndexerError, GraphBuilderError) as exc:
        _err.print(f"[red]compaction failed:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        index.close()
    if as_json:
        typer.echo(json.dumps(_as_dict(done), default=str, indent=2))
    else:
        _print(done)


def _open_index(settings: HeadwaterSettings) -> VectorIndex:
    """The Qdrant server when configured, else the embedded index of `--home`."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        from services.indexer.adapters.qdrant import QdrantIndex

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantIndex(QdrantClient(url=settings.qdrant_url, api_key=key))
    from services.indexer.adapters.edge import EdgeIndex

    if not settings.index_dir.is_dir():  # EdgeIndex would create an empty one
        _err.print(f"[red]no index at {settings.index_dir}[/] (set --home, or HEADWATER_QDRANT_URL)")
        raise typer.Exit(1)
    return EdgeIndex(settings.index_dir)


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
        _out.print(
            f"{r.collection}: {r.scanned} soft-deleted chunks, {verb} {count} "
            f"(deleted before {r.cutoff.isoformat()}), kept {r.kept_recent_deleted}; tombstones kept"
        )
    if r is not None and r.dry_run:
        _out.print("graph: not compacted on a dry run")
        return
    removed = [g for g in done.graph if g.support or g.relations or g.entities]
    for g in removed:
        _out.print(
            f"graph {g.tenant}: removed {g.support} support rows, {g.relations} relations, "
            f"{g.entities} entities"
        )
    if done.graph and not removed:
        _out.print(f"graph: nothing to remove in {len(done.graph)} tenants")
