"""Carries out, in the process that owns index writes, what `headwater migrate` recorded in Postgres.

The CLI only records operators' decisions (state in `index_migrations`); the embedded runtime, the
index node or the indexer applies them: creates the target collection, moves the alias, keeps the
stage handlers writing every collection the state names, follows the read side's model in the
embedding stage (embedded runtime), copies the source page by page (embedded runtime) and retires a
collection at the end. Every step is idempotent and re-derived from the recorded state, so a process
killed at any point picks up where it stopped when it starts again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from services.embedder.config import EmbedderSettings
from services.embedder.handlers import EmbedStage
from services.embedder.pool import BackendPool
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.reembed import CountingBackend, Reembedder
from services.indexer.handlers import IndexStage
from services.indexer.migration.backfill import copy_page
from services.indexer.migration.plan import IndexCollection, Migration, MigrationState
from services.indexer.migration.store import MigrationStore
from services.indexer.ports import CollectionSpec, VectorIndex

logger = logging.getLogger(__name__)

QueryEmbedder = Callable[[str], list[float]]


@dataclass
class CollectionModels:
    """Which model embeds queries for a collection, and which collections a search may name."""

    store: MigrationStore | None
    pool: BackendPool
    default: EmbeddingBackend
    alias: str
    _known: dict[str, IndexCollection] = field(default_factory=dict)

    def collection(self, name: str) -> IndexCollection | None:
        if name not in self._known and self.store is not None:
            found = self.store.collection(name)
            if found is not None:
                self._known[name] = found  # a registered collection's model never changes
        return self._known.get(name)

    def backend_for(self, name: str) -> EmbeddingBackend:
        found = self.collection(name)
        return self.default if found is None else self.pool.get(found.model_id, found.profile)

    def embed_for(self, name: str) -> QueryEmbedder:
        backend = self.backend_for(name)
        return lambda text: [float(x) for x in backend.embed([text])[0]]

    def index_allowed(self, name: str) -> bool:
        found = self.collection(name)
        if found is None or found.alias != self.alias or self.store is None:
            return False
        return self.store.is_live(name)  # retirement is the one change a registered collection sees


@dataclass
class MigrationCoordinator:
    store: MigrationStore
    indexing: IndexStage  # retargeted at the collections the state names
    pool: BackendPool
    cache: EmbeddingCache
    embedder: EmbedderSettings  # batch budgets of the re-embedding
    copy_backfill: bool  # embedded runtime: backfill by copying the source collection
    embedding: EmbedStage | None = None  # embedded runtime: follows the read side's model
    page_size: int = 128
    pause_s: float = 0.0  # between copy steps: a backfill must not starve the live pipeline
    on_migration: Callable[[Migration | None], None] | None = None  # distributed: start/stop the consumer
    _reembedders: dict[str, Reembedder] = field(default_factory=dict)
    _applied: tuple[int, MigrationState] | None = None

    @property
    def index(self) -> VectorIndex:
        return self.indexing.index

    @property
    def alias(self) -> str:
        return self.indexing.alias

    def run(self, stop: threading.Event, *, poll_s: float = 1.0) -> None:
        """Apply and backfill until `stop`; a failure is logged and retried on the next round."""
        while not stop.is_set():
            try:
                busy = self.step()
            except Exception:
                logger.exception("migration step failed; retrying")
                busy = False
            stop.wait(self.pause_s if busy else poll_s)

    def step(self) -> bool:
        """One round: apply the recorded state, then copy one page. True if there is more to copy."""
        migration = self.store.current(self.alias)
        if migration is None:
            return False
        self.apply(migration)
        if self.copy_backfill and migration.state.active and not migration.backfill_complete:
            self.copy_one_page(migration)
            return True
        return False

    def apply(self, migration: Migration) -> None:
        """Make the index and the handlers match the recorded state (idempotent); a state this process
        has already applied costs nothing more, so polling stays cheap."""
        state = migration.state
        if self._applied == (migration.id, state):
            return
        if state.active:
            self._ensure(migration.target)
        read = migration.read_collection
        if self.index.resolve_alias(self.alias) != read.name:
            self.index.switch_alias(self.alias, read.name)
            logger.info("alias %s now points at %s (%s)", self.alias, read.name, state.value)
        self.indexing.retarget(
            read=read,
            write=migration.write_collections,
            reembedder_for=self.reembedder if self.copy_backfill else None,
        )
        if self.embedding is not None:
            follow_model(self.embedding, self.pool, read)
        if state is MigrationState.FINISHED:
            self._retire(migration.source)
        elif state is MigrationState.ABORTED:
            self._retire(migration.target)
        if self.on_migration is not None:
            self.on_migration(migration if state.active else None)
        if migration.applied_state is not state:
            self.store.mark_applied(migration.id, state)
        self._applied = (migration.id, state)

    def reembedder(self, collection: IndexCollection) -> Reembedder:
        if collection.name not in self._reembedders:
            backend = CountingBackend(self.pool.get(collection.model_id, collection.profile))
            self._reembedders[collection.name] = Reembedder(
                backend=backend,
                cache=self.cache,
                max_batch_tokens=self.embedder.max_batch_tokens,
                max_batch_size=self.embedder.max_batch_size,
            )
        return self._reembedders[collection.name]

    def copy_one_page(self, migration: Migration) -> None:
        cursor, complete = self.store.scan_cursor(migration.id)
        if complete:
            return
        reembed = self.reembedder(migration.target)
        before = reembed.backend.texts
        page = copy_page(
            index=self.index,
            source=migration.source,
            target=migration.target,
            after=cursor,
            limit=self.page_size,
            backend=reembed.backend,
            cache=self.cache,
            write_lock=self.indexing.write_lock,
        )
        self.index.flush()  # the cursor moves on only once the copied points are durable
        self.store.save_scan(
            migration.id,
            cursor=page.next_cursor,
            complete=page.next_cursor is None,
            scanned=page.scanned,
            total=self.index.size(migration.source.name),
        )
        self.store.add_progress(migration.id, points=page.copied, texts=reembed.backend.texts - before)

    def _ensure(self, collection: IndexCollection) -> None:
        distance = (collection.profile or {}).get("distance", "cosine")  # the model's, from its profile
        self.index.ensure_collection(
            CollectionSpec(name=collection.name, dense_dim=collection.dimension, distance=distance)
        )
        self.indexing.index_metadata(collection.name)

    def _retire(self, collection: IndexCollection) -> None:
        if self.index.collection_exists(collection.name):
            self.index.drop_collection(collection.name)
            logger.info("dropped collection %s", collection.name)
        self.store.retire(collection.name)
        self._reembedders.pop(collection.name, None)


def follow_model(embedding: EmbedStage, pool: BackendPool, read: IndexCollection) -> None:
    """New changes are embedded with the model readers use, so after cutover the target gets them as
    they are and only the source (kept for rollback) needs re-embedding. (Chunk boundaries keep their
    own model: the chunk stage was built with it.)"""
    if embedding.backend.model_id != read.model_id:
        embedding.use(pool.get(read.model_id, read.profile))


def read_collection(store: MigrationStore, alias: str) -> IndexCollection | None:
    """The collection readers of `alias` use, as recorded (None before the first one is registered)."""
    migration = store.current(alias)
    if migration is not None:
        return migration.read_collection
    live = store.live_collections(alias)
    return live[0] if len(live) == 1 else None


@dataclass
class ModelFollower:
    """The distributed embedding stage's side of a migration: embed with the readers' model."""

    store: MigrationStore
    embedding: EmbedStage
    pool: BackendPool
    alias: str

    def step(self) -> None:
        read = read_collection(self.store, self.alias)
        if read is not None:
            follow_model(self.embedding, self.pool, read)

    def run(self, stop: threading.Event, *, poll_s: float = 1.0) -> None:
        while not stop.wait(poll_s):
            try:
                self.step()
            except Exception:
                logger.exception("following the readers' model failed; retrying")
