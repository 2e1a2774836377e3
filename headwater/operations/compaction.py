"""One compaction run: soft-deleted chunks past their retention hard-deleted from the index, unsupported
entities and relations swept from the graph. `headwater compact` runs it once; the writing processes run it
periodically (`headwater.runtime.compaction`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from schemas.common import utc_now
from services.graph_builder.compaction import compact_graph
from services.graph_builder.domain import GraphCompaction
from services.graph_builder.ports import GraphMaintenance
from services.indexer.compaction import CompactionReport, compact
from services.indexer.config import CompactionSettings
from services.indexer.ports import VectorIndex

GraphOpener = Callable[[], AbstractContextManager[GraphMaintenance]]


@dataclass(frozen=True, slots=True)
class CompactionRun:
    """One run: the index report (None when this process owns no index) and one line per graph tenant."""

    index: CompactionReport | None
    graph: list[GraphCompaction] = field(default_factory=list)


def postgres_graph(connect: Callable[[], psycopg.Connection[Any]]) -> GraphOpener:
    """A fresh connection per run: the graph stage's own is busy, and a restarted database heals itself."""
    from services.graph_builder.adapters.postgres import PostgresGraphStore

    @contextmanager
    def opened() -> Iterator[GraphMaintenance]:
        with connect() as conn:
            yield PostgresGraphStore(conn)

    return opened


def graph_opener_for(store: object, connect: Callable[[], psycopg.Connection[Any]]) -> GraphOpener | None:
    """The Postgres graph is compacted on its own connection; any other store (the in-memory one prunes
    as it writes and cannot leave anything dangling) is not."""
    from services.graph_builder.adapters.postgres import PostgresGraphStore

    return postgres_graph(connect) if isinstance(store, PostgresGraphStore) else None


def run_compaction(
    *,
    index: VectorIndex | None,
    collection: str,
    graph: GraphOpener | None,
    settings: CompactionSettings,
    now: datetime | None = None,
    dry_run: bool = False,
) -> CompactionRun:
    """Compact the index's `collection` (an alias is resolved) and the graph, whichever are given."""
    report = None
    if index is not None:
        report = compact(
            index=index,
            collection=collection,
            retention=settings.retention,
            now=now or utc_now(),
            dry_run=dry_run,
        )
    graphs: list[GraphCompaction] = []
    if graph is not None and not dry_run:
        with graph() as store:
            graphs = compact_graph(store)
    return CompactionRun(index=report, graph=graphs)
