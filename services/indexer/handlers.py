"""The indexing stage's handler, called alike by the embedded runtime's thread and the Kafka consumer.

It writes every collection the alias's state names: one normally, both sides during a model migration
(the migration coordinator of the index-owning process retargets it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headwater.observability import metrics
from schemas import ChunksEnriched
from schemas.common import utc_now
from services.indexer.migration.plan import IndexCollection, collection_name
from services.indexer.migration.store import MigrationStore
from services.indexer.migration.writer import Reembed, write_everywhere
from services.indexer.ports import CollectionSpec, MetadataIndexKind, VectorIndex
from services.indexer.service import IndexOutcome


@dataclass
class IndexStage:
    """Enriched chunk sets in, fenced writes to the index, one outcome per change out."""

    index: VectorIndex
    alias: str
    metadata_indexes: Mapping[str, MetadataIndexKind] = field(default_factory=dict)
    registry: MigrationStore | None = None  # the collection registry; None: this process keeps none
    # The model (id, dimension) a first collection is created for, and its profile, recorded with it. None:
    # an indexer process embeds nothing, so the first change names its model.
    default_model: tuple[str, int] | None = None
    profile: dict[str, Any] | None = None
    collection: str | None = None  # the readers' collection
    # Every collection a change must reach: the alias's one, and during a model migration the other too.
    write_targets: list[IndexCollection] = field(default_factory=list)
    # The embedded runtime re-embeds inline for a collection of another model; the distributed indexer
    # leaves that to the migration consumer (None), and dead-letters a change no collection can take.
    reembedder_for: Callable[[IndexCollection], Reembed] | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)  # index writes vs a backfill copy

    def __call__(self, sets: list[ChunksEnriched]) -> list[IndexOutcome]:
        if not self.write_targets:
            self.ensure_collection(model=(sets[0].model, sets[0].dimension))
        with self.write_lock:
            report = write_everywhere(
                sets,
                index=self.index,
                collections=list(self.write_targets),
                reembedder_for=self.reembedder_for,
            )
            # One fsync per batch, before the change is acknowledged upstream (10-350 ms per flush here).
            self.index.flush()
        outcomes = [outcome for outcome in report.outcomes if outcome is not None]
        # Searchable from here. Replays and stale versions are no-ops: they would count old times again.
        applied = [s for s, outcome in zip(sets, outcomes, strict=True) if outcome.status == "apply"]
        metrics.observe_freshness(applied, now=utc_now())
        return outcomes

    def retarget(
        self,
        *,
        read: IndexCollection,
        write: list[IndexCollection],
        reembedder_for: Callable[[IndexCollection], Reembed] | None,
    ) -> None:
        """Write `write` from the next batch on (a migration's state changed); waits for a batch in hand."""
        with self.write_lock:
            self.write_targets = write
            self.collection = read.name
            self.reembedder_for = reembedder_for

    def written_collections(self) -> list[str]:
        """The collections this process writes (both sides of a migration), else the alias."""
        return [c.name for c in self.write_targets] or [self.alias]

    def ensure_collection(self, *, model: tuple[str, int] | None = None) -> str:
        """The collection behind the alias, created on first use for `model` (id, dimension), by default
        the one this process embeds with."""
        current = self.index.resolve_alias(self.alias)
        if current is None:
            model_id, dimension = self._model(model)
            current = collection_name(self.alias, model_id, dimension)
            distance = (self.profile or {}).get("distance", "cosine")
            self.index.ensure_collection(CollectionSpec(name=current, dense_dim=dimension, distance=distance))
            self.index.switch_alias(self.alias, current)
        self.index_metadata(current)  # on every start: new ones get built
        self.collection = current
        if not self.write_targets:
            self.write_targets = [self._registered(current, model)]
        return current

    def index_metadata(self, collection: str) -> None:
        for key, kind in self.metadata_indexes.items():
            self.index.index_metadata(collection, key, kind)

    def _model(self, model: tuple[str, int] | None) -> tuple[str, int]:
        found = model or self.default_model
        if found is None:
            raise RuntimeError("no model to create the first collection for: this process embeds nothing")
        return found

    def _registered(self, name: str, model: tuple[str, int] | None) -> IndexCollection:
        """The collection with its model, from the registry (recorded there on first sight)."""
        if self.registry is not None:
            known = self.registry.collection(name)
            if known is not None:
                return known
        model_id, dimension = self._model(model)
        own = self.default_model is not None and self.default_model[0] == model_id
        found = IndexCollection(
            name=name,
            alias=self.alias,
            model_id=model_id,
            dimension=dimension,
            profile=self.profile if own else None,
        )
        return self.registry.register(found) if self.registry is not None else found
