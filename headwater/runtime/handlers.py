"""The five stage handlers, shared by both runtimes: the embedded threads and the Kafka consumers
call exactly these functions, so the two cannot drift apart."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from headwater.config import HeadwaterSettings
from headwater.models import count_tokens
from headwater.observability import metrics
from schemas import ChunksCreated, ChunksEmbedded, ChunksEnriched, DocumentChanged, DocumentRedacted
from schemas.common import utc_now
from services.chunker.config import ChunkerSettings
from services.chunker.logic import chunk_documents
from services.embedder.config import EmbedderSettings
from services.embedder.errors import TransientEmbeddingError
from services.embedder.logic import embed_chunk_sets
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.sparse import SparseEncoder
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.graph_builder.service import build_graph_for
from services.indexer.migration.plan import IndexCollection
from services.indexer.migration.writer import Reembedder, write_everywhere
from services.indexer.ports import CollectionSpec, VectorIndex
from services.indexer.service import IndexOutcome

if TYPE_CHECKING:
    from services.indexer.migration.store import MigrationStore
    from services.ingest.redaction import Redactor  # Presidio, spaCy, torch (~750 MiB): ingest only

# Errors worth retrying: the message is fine, something it depends on is briefly unavailable.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientEmbeddingError,
    psycopg.OperationalError,
    TimeoutError,
    ConnectionError,
)

Handler = Callable[[list[Any]], Sequence[Any]]
_Part = TypeVar("_Part")


def _required(part: _Part | None, what: str) -> _Part:
    """A stage process builds only the parts its stage uses; asking for another is a wiring bug."""
    if part is None:
        raise RuntimeError(f"this stage needs {what}, which this process was not given")
    return part


def collection_name(alias: str, model_id: str, dimension: int, generation: int = 1) -> str:
    """Versioned physical collection for a model; the alias in front of it is what readers use."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")
    return f"{alias}__{slug}__d{dimension}__v{generation}"


@dataclass
class StageHandlers:
    """Batch-in, batch-out functions, one per stage; each part is only needed by its own stage."""

    settings: HeadwaterSettings
    redactor: Redactor | None = None
    backend: EmbeddingBackend | None = None
    boundary_encoder: EmbeddingBackend | None = None  # scores chunk cut points; None: the backend
    cache: EmbeddingCache | None = None
    sparse: SparseEncoder | None = None
    graph_store: GraphStore | None = None
    recognizer: EntityRecognizer | None = None
    index: VectorIndex | None = None
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    collection: str | None = None
    # Every collection a change must reach: the alias's one, and during a model migration the other one
    # too. The migration coordinator of the index-owning process keeps it current.
    write_targets: list[IndexCollection] = field(default_factory=list)
    # The embedded runtime re-embeds inline for a collection of another model; the distributed indexer
    # leaves that to the migration consumer (None), and dead-letters a change no collection can take.
    reembedder_for: Callable[[IndexCollection], Reembedder] | None = None
    registry: MigrationStore | None = None  # the collection registry; None: this process keeps none
    profile: dict[str, Any] | None = None  # the backend's model profile, recorded with new collections
    write_lock: threading.Lock = field(default_factory=threading.Lock)  # index writes vs a backfill copy
    chunks_created: int = 0
    pii_counts: Counter[str] = field(default_factory=Counter)

    def for_stage(self, stage: str) -> Handler:
        handlers: dict[str, Handler] = {
            "ingest": self.redact,
            "chunker": self.chunk,
            "embedder": self.embed,
            "graph_builder": self.enrich,
            "indexer": self.index_batch,
        }
        return handlers[stage]

    def redact(self, events: list[DocumentChanged]) -> list[DocumentRedacted]:
        from services.ingest.redaction.documents import redact_documents

        redacted = redact_documents(events, redactor=_required(self.redactor, "a PII redactor"))
        for doc in redacted:
            self.pii_counts.update(doc.pii_counts)
            metrics.count_pii(doc.pii_counts)
        return redacted

    def chunk(self, docs: list[DocumentRedacted]) -> list[ChunksCreated]:
        encoder = _required(self.boundary_encoder or self.backend, "an encoder to score cut points")
        sets = chunk_documents(
            docs, settings=self.chunker, count_tokens=count_tokens, encode=lambda texts: encoder.embed(texts)
        )
        self.chunks_created += sum(len(s.chunks) for s in sets)
        return sets

    def embed(self, sets: list[ChunksCreated]) -> list[ChunksEmbedded]:
        tokens = {c.text: c.token_count for s in sets for c in s.chunks}
        return embed_chunk_sets(
            sets,
            backend=metrics.MeteredBackend(_required(self.backend, "an embedding backend"), tokens),
            cache=_required(self.cache, "an embedding cache"),
            sparse=_required(self.sparse, "a sparse encoder"),
            max_batch_tokens=self.embedder.max_batch_tokens,
            max_batch_size=self.embedder.max_batch_size,
        )

    def enrich(self, sets: list[ChunksEmbedded]) -> list[ChunksEnriched]:
        store = _required(self.graph_store, "a graph store")
        return [build_graph_for(s, recognizer=self.recognizer, store=store) for s in sets]

    def index_batch(self, sets: list[ChunksEnriched]) -> list[IndexOutcome]:
        index = _required(self.index, "a vector index")
        if not self.write_targets:
            self.ensure_collection(model=(sets[0].model, sets[0].dimension))
        with self.write_lock:
            report = write_everywhere(
                sets, index=index, collections=list(self.write_targets), reembedder_for=self.reembedder_for
            )
            # One fsync per batch, before the change is acknowledged upstream (10-350 ms per flush here).
            index.flush()
        outcomes = [outcome for outcome in report.outcomes if outcome is not None]
        # Searchable from here. Replays and stale versions are no-ops: they would count old times again.
        applied = [s for s, outcome in zip(sets, outcomes, strict=True) if outcome.status == "apply"]
        metrics.observe_freshness(applied, now=utc_now())
        return outcomes

    def written_collections(self) -> list[str]:
        """The collections this process writes (both sides of a migration), else the alias."""
        return [c.name for c in self.write_targets] or [self.settings.collection_alias]

    def ensure_collection(self, *, model: tuple[str, int] | None = None) -> str:
        """The collection behind the alias, created on first use for `model` (id, dimension), by
        default the backend's (an indexer process has no backend: the events name their model)."""
        index = _required(self.index, "a vector index")
        alias = self.settings.collection_alias
        current = index.resolve_alias(alias)
        if current is None:
            if model is None:
                backend = _required(self.backend, "the embedding model's id and dimension")
                model = (backend.model_id, backend.dimension)
            model_id, dimension = model
            current = collection_name(alias, model_id, dimension)
            distance = (self.profile or {}).get("distance", "cosine")
            index.ensure_collection(CollectionSpec(name=current, dense_dim=dimension, distance=distance))
            index.switch_alias(alias, current)
        for key, kind in self.settings.metadata_indexes.items():  # on every start: new ones get built
            index.index_metadata(current, key, kind)
        self.collection = current
        if not self.write_targets:
            self.write_targets = [self._registered(current, model)]
        return current

    def _registered(self, name: str, model: tuple[str, int] | None) -> IndexCollection:
        """The collection with its model, from the registry (recorded there on first sight)."""
        if self.registry is not None:
            known = self.registry.collection(name)
            if known is not None:
                return known
        if model is None:
            backend = _required(self.backend, "the embedding model's id and dimension")
            model = (backend.model_id, backend.dimension)
        profile = self.profile if self.backend is not None and self.backend.model_id == model[0] else None
        found = IndexCollection(
            name=name,
            alias=self.settings.collection_alias,
            model_id=model[0],
            dimension=model[1],
            profile=profile,
        )
        return self.registry.register(found) if self.registry is not None else found
