"""Adapters built from settings, one function each, shared by both composition roots and the commands, so
each kind of part is built the same way everywhere: the index, the Postgres stores, the cut-point
encoder, and the query service with its per-collection models."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from headwater.config import HeadwaterSettings
from services.chunker.config import ChunkerSettings
from services.embedder.config import EmbedderSettings
from services.embedder.ports import EmbeddingBackend
from services.embedder.sparse import SparseEncoder
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.indexer.ports import VectorIndex
from services.query.config import QuerySettings

if TYPE_CHECKING:
    from headwater.runtime.migrations import CollectionModels
    from services.embedder.adapters.cache import PostgresEmbeddingCache
    from services.graph_builder.adapters.postgres import PostgresGraphStore
    from services.indexer.migration.store import MigrationStore
    from services.query.service import QueryService

Connect = Callable[[], psycopg.Connection[Any]]


def open_index(settings: HeadwaterSettings, *, read_only: bool = False) -> VectorIndex:
    """The Qdrant server at `HEADWATER_QDRANT_URL`, else the embedded engine under the home (which only
    one process may open: a reader that is not its owner is refused)."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        from services.indexer.adapters.qdrant import QdrantIndex

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantIndex(QdrantClient(url=settings.qdrant_url, api_key=key))
    if read_only:
        raise SystemExit(
            "`headwater run query` needs a Qdrant server (HEADWATER_QDRANT_URL): the embedded engine "
            "can be opened by one process only; run `headwater run index-node` instead"
        )
    return edge_index(settings)


def edge_index(settings: HeadwaterSettings) -> VectorIndex:
    """The embedded Qdrant-edge engine under the runtime's home."""
    from services.indexer.adapters.edge import EdgeIndex

    return EdgeIndex(settings.index_dir)


def graph_store(connect: Connect) -> PostgresGraphStore:
    from services.graph_builder.adapters.postgres import PostgresGraphStore

    store = PostgresGraphStore(connect())
    store.ensure_schema()
    return store


def embedding_cache(connect: Connect) -> PostgresEmbeddingCache:
    from services.embedder.adapters.cache import PostgresEmbeddingCache

    cache = PostgresEmbeddingCache(connection=connect())
    cache.ensure_schema()
    return cache


def migration_store(connect: Connect) -> MigrationStore:
    from services.indexer.migration.store import MigrationStore

    store = MigrationStore(connect)
    store.ensure_schema()
    return store


def boundary_encoder_for(
    chunker: ChunkerSettings, embedder: EmbedderSettings, backend: EmbeddingBackend
) -> EmbeddingBackend:
    """The int8 export of the local model scores cut points at about twice the speed of fp32."""
    if chunker.boundary_model == "onnx-int8" and embedder.backend == "local":
        from services.embedder.adapters.onnx import OnnxBackend

        return OnnxBackend(cache_dir=embedder.onnx_cache_dir)
    return backend


def query_service(
    settings: QuerySettings,
    *,
    index: VectorIndex,
    alias: str,
    backend: EmbeddingBackend,
    sparse: SparseEncoder,
    graph_store: GraphStore | None,
    models: CollectionModels,
    recognizer: EntityRecognizer | None = None,
) -> QueryService:
    """The query service; a query is embedded with the model of the collection it reads (both sides of a
    migration), and NER linking gets spaCy unless a recognizer is given."""
    from services.query.service import build_query_service

    if settings.graph_linker == "ner" and recognizer is None:
        from services.graph_builder.adapters.spacy_ner import SpacyEntityRecognizer

        recognizer = SpacyEntityRecognizer()
    return build_query_service(
        settings,
        index=index,
        alias=alias,
        embed_query=lambda text: [float(x) for x in backend.embed([text])[0]],
        encode_sparse_query=sparse.encode_query,
        graph_store=graph_store,
        recognizer=recognizer,
        embed_for=models.embed_for,
        index_allowed=models.index_allowed,
    )
