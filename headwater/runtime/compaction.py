"""The periodic compaction job of a running process: the index it owns, and/or the graph it writes.

With the embedded engine only the process holding the index directory may open it, so the job runs inside
that process (the embedded runtime, `headwater run indexer` / `index-node`); `headwater run graph_builder`
compacts the graph. Both compactions are idempotent and safe beside the pipeline's writes, so a second
process compacting the same Qdrant server or Postgres (several indexer replicas) only repeats no-ops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from headwater.operations.compaction import CompactionRun, GraphOpener, run_compaction
from services.indexer.config import CompactionSettings
from services.indexer.errors import CollectionNotFound
from services.indexer.ports import VectorIndex

logger = logging.getLogger(__name__)


class CompactionJob(threading.Thread):
    """Runs `run_compaction` every `compact_interval_s` until `stop()`; a failed run is logged and retried
    at the next interval (compaction is housekeeping: the pipeline never waits for it)."""

    def __init__(
        self,
        *,
        index: VectorIndex | None,
        collection: str | Callable[[], list[str]],
        graph: GraphOpener | None,
        settings: CompactionSettings,
    ) -> None:
        super().__init__(name="compaction", daemon=True)
        self._index = index
        # During a model migration both collections are written, so both are compacted.
        self._collections = collection if callable(collection) else (lambda: [collection])
        self._graph = graph
        self._settings = settings
        self._stop_event = threading.Event()
        self.runs = 0

    def run(self) -> None:
        wait = min(self._settings.compact_first_delay_s, self._settings.compact_interval_s)
        while not self._stop_event.wait(timeout=wait):
            self.run_once()
            wait = self._settings.compact_interval_s

    def run_once(self) -> CompactionRun | None:
        """One compaction of every collection (and the graph), logged; None when it failed."""
        done: CompactionRun | None = None
        for position, collection in enumerate(self._collections()):
            done = self._compact(collection, graph=self._graph if position == 0 else None)
            if done is None:
                return None
        if done is not None:
            self.runs += 1
        return done

    def _compact(self, collection: str, *, graph: GraphOpener | None) -> CompactionRun | None:
        try:
            done = run_compaction(
                index=self._index, collection=collection, graph=graph, settings=self._settings
            )
        except CollectionNotFound:
            logger.info("compaction: no collection %r yet", collection)  # nothing indexed so far
            return None
        except Exception:
            logger.exception("compaction failed; retrying in %.0f s", self._settings.compact_interval_s)
            return None
        if done.index is not None:
            r = done.index
            logger.info(
                "compaction of %s: %d soft-deleted, %d hard-deleted, %d kept (younger than %s)",
                r.collection,
                r.scanned,
                r.hard_deleted,
                r.kept_recent_deleted,
                r.cutoff.isoformat(),
            )
        for g in done.graph:
            if g.support or g.relations or g.entities:
                logger.info(
                    "graph compaction of %s: %d support, %d relations, %d entities removed",
                    g.tenant,
                    g.support,
                    g.relations,
                    g.entities,
                )
        return done

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the run in hand, if any; safe to call when never started or twice."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=timeout)


def compaction_job(
    *,
    index: VectorIndex | None,
    collection: str | Callable[[], list[str]],
    graph: GraphOpener | None,
    settings: CompactionSettings | None = None,
) -> CompactionJob | None:
    """The periodic job, not started; None when the interval is 0 or there is nothing to compact."""
    settings = settings or CompactionSettings()
    if settings.compact_interval_s <= 0 or (index is None and graph is None):
        return None
    return CompactionJob(index=index, collection=collection, graph=graph, settings=settings)
