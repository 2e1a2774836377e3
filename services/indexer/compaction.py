"""Index compaction: hard-delete chunk points soft-deleted longer than a retention; keep every tombstone.

The pipeline only soft-deletes (a payload `state=deleted` with `deleted_at`), so readers never see a half
applied change and a replay can be fenced. Compaction reclaims the space later, under two rules:

* Tombstones stay, whatever their age: a document's tombstone carries the version of its delete, and
  without it a replayed older upsert would resurrect the document (see `logic`). A superseded chunk carries
  no fence the live chunks or the tombstone do not also carry, so it may go.
* The delete is one filtered operation in the engine (`state == deleted AND deleted_at < cutoff`), not a
  scan followed by a delete by id: a point the indexer writes live again between the two (a document
  restored at a new version reuses its chunk ids) is never removed, because the engine re-checks the
  condition as it applies the delete. A point soft-deleted meanwhile is newer than the cutoff.

Running it twice deletes nothing the second time: what the first run removed is gone, and the rest is
younger than the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.indexer.logic import TOMBSTONE_CHUNK
from services.indexer.ports import DeletedScope, VectorIndex

KEEP = (TOMBSTONE_CHUNK,)


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What one compaction of one collection found and did."""

    collection: str  # the collection itself, an alias resolved once so every step reads the same one
    cutoff: datetime  # points soft-deleted before this moment were due
    scanned: int  # soft-deleted chunk points (tombstones excluded) when the run started
    due: int  # of those, soft-deleted before the cutoff
    hard_deleted: int  # removed (0 on a dry run)
    kept_recent_deleted: int  # soft-deleted chunk points younger than the cutoff, left for later
    dry_run: bool = False


def cutoff_for(*, now: datetime, retention: timedelta) -> datetime:
    """The moment before which a soft-deleted point is due; a negative retention is refused."""
    if retention < timedelta(0):
        raise ValueError(f"retention must not be negative, got {retention}")
    return now - retention


def compact(
    *, index: VectorIndex, collection: str, retention: timedelta, now: datetime, dry_run: bool = False
) -> CompactionReport:
    """Hard-delete the chunk points of `collection` (or the alias's target) soft-deleted before
    `now - retention`, keeping tombstones; with `dry_run`, only count them."""
    target = index.resolve_alias(collection) or collection
    cutoff = cutoff_for(now=now, retention=retention)
    every = DeletedScope(keep_chunk_ids=KEEP)
    old = DeletedScope(before=cutoff, keep_chunk_ids=KEEP)
    scanned = index.count_deleted(target, every)
    due = index.count_deleted(target, old)
    hard_deleted = 0 if dry_run or not due else index.purge_deleted(target, old)
    kept = scanned - due if dry_run else index.count_deleted(target, every)
    return CompactionReport(
        collection=target,
        cutoff=cutoff,
        scanned=scanned,
        due=due,
        hard_deleted=hard_deleted,
        kept_recent_deleted=kept,
        dry_run=dry_run,
    )
