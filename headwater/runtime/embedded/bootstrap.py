"""Composition root of the embedded runtime: every adapter built once from settings, production defaults
for whatever a caller (a test, a benchmark) does not hand in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from headwater.config import HeadwaterSettings, MigrationSettings
from headwater.runtime import parts as build_parts
from headwater.runtime.state import state_connector
from services.chunker.config import ChunkerSettings
from services.embedder.config import EmbedderSettings
from services.embedder.factory import build_backend, build_sparse_encoder
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.profiles import current_profile, load_profiles
from services.embedder.sparse import SparseEncoder
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.indexer.ports import VectorIndex
from services.ingest.redaction import Redactor
from services.query.config import QuerySettings


@dataclass
class Components:
    """Everything the runtime needs; tests pass fakes or real adapters, `build` fills the rest."""

    settings: HeadwaterSettings
    index: VectorIndex
    backend: EmbeddingBackend
    cache: EmbeddingCache
    sparse: SparseEncoder
    redactor: Redactor
    graph_store: GraphStore
    recognizer: EntityRecognizer | None
    connect: Callable[[], psycopg.Connection[Any]]
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    boundary_encoder: EmbeddingBackend | None = None  # scores chunk cut points; None: the backend
    query: QuerySettings = field(default_factory=QuerySettings)
    graph_reader: GraphStore | None = None  # the query side's own connection; None: `graph_store`
    profile: dict[str, Any] | None = None  # the model profile `backend` was built from; None: given
    migration: MigrationSettings = field(default_factory=MigrationSettings)


def build(
    settings: HeadwaterSettings,
    *,
    index: VectorIndex | None = None,
    backend: EmbeddingBackend | None = None,
    cache: EmbeddingCache | None = None,
    redactor: Redactor | None = None,
    graph_store: GraphStore | None = None,
    recognizer: EntityRecognizer | None = None,
    embedder: EmbedderSettings | None = None,
    chunker: ChunkerSettings | None = None,
    query: QuerySettings | None = None,
    migration: MigrationSettings | None = None,
) -> Components:
    """Production defaults for every part not given."""
    connect_db = state_connector(settings)
    embedder = embedder or EmbedderSettings()
    chunker = chunker or ChunkerSettings()
    graph_reader: GraphStore | None = None
    if graph_store is None:
        graph_store = build_parts.graph_store(connect_db)
        # Queries read on their own connection, never inside the graph stage's write transactions.
        graph_reader = build_parts.graph_store(connect_db)
    profile = None
    if backend is None:
        backend = build_backend(embedder)
        profile = current_profile(embedder, load_profiles(embedder.profiles_file)).model_dump()
    return Components(
        settings=settings,
        index=index or build_parts.edge_index(settings),
        backend=backend,
        cache=cache or build_parts.embedding_cache(connect_db),
        sparse=build_sparse_encoder(embedder),
        redactor=redactor or Redactor(secret=settings.pii_secret.get_secret_value().encode()),
        graph_store=graph_store,
        recognizer=recognizer,
        connect=connect_db,
        chunker=chunker,
        embedder=embedder,
        boundary_encoder=build_parts.boundary_encoder_for(chunker, embedder, backend),
        query=query or QuerySettings(),
        graph_reader=graph_reader,
        profile=profile,
        migration=migration or MigrationSettings(),
    )
