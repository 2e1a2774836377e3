"""A small world for query tests: documents go through the real graph and indexer logic into the
in-memory index and graph store, with the hashing embedder and the real BM25 encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas import ChangeOp, ChunksEnriched
from services.embedder.adapters.fake import HashingBackend
from services.embedder.sparse import SparseEncoder
from services.graph_builder.adapters.memory import MemoryGraphStore
from services.graph_builder.service import build_graph_for
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.ports import CollectionSpec
from services.indexer.service import index_event
from services.query.graph_retrieval import GazetteerLinker, GraphRetriever
from services.query.rerank import Reranker
from services.query.service import QueryService
from tests.builders import chunk, chunks_embedded, chunks_enriched

ALIAS = "chunks"
COLLECTION = "chunks_v1"
NOW = datetime(2025, 1, 2, tzinfo=UTC)

# A chunk: its text, and the entities an upstream recogniser found in it (surface form → NER label).
ChunkSpec = tuple[str, Mapping[str, str]]


@dataclass
class World:
    backend: HashingBackend = field(default_factory=lambda: HashingBackend(dimension=64))
    sparse: SparseEncoder = field(default_factory=SparseEncoder)
    index: InMemoryIndex = field(default_factory=InMemoryIndex)
    graph_store: MemoryGraphStore = field(default_factory=MemoryGraphStore)

    def __post_init__(self) -> None:
        self.index.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=self.backend.dimension))
        self.index.switch_alias(ALIAS, COLLECTION)

    def service(self, *, graph: bool = True, reranker: Reranker | None = None) -> QueryService:
        return QueryService(
            index=self.index,
            alias=ALIAS,
            embed_query=lambda text: [float(x) for x in self.backend.embed([text])[0]],
            encode_sparse_query=self.sparse.encode_query,
            candidates=50,
            graph=GraphRetriever(store=self.graph_store, linker=GazetteerLinker()) if graph else None,
            reranker=reranker,
        )

    def add(
        self,
        document_id: str,
        chunks: Sequence[ChunkSpec | str],
        *,
        tenant: str = "acme",
        version: int = 1,
        acl: Sequence[str] = (),
        metadata: Mapping[str, object] | None = None,
    ) -> ChunksEnriched:
        """Build the document's graph and index its chunks, as the pipeline's last two stages do."""
        specs = [(c, {}) if isinstance(c, str) else c for c in chunks]
        embedded = chunks_embedded(
            *[
                chunk(f"{document_id}#{i}", text, entities, position=i)
                for i, (text, entities) in enumerate(specs)
            ],
            backend=self.backend,
            sparse=self.sparse.encode_document,
            tenant=tenant,
            document_id=document_id,
            version=version,
            title=f"Title of {document_id}",
            metadata=dict(metadata or {}),
            acl=list(acl),
        )
        enriched = build_graph_for(embedded, recognizer=None, store=self.graph_store)
        index_event(enriched, index=self.index, collection=COLLECTION, now=NOW)
        return enriched

    def delete_from_index_only(self, document_id: str, *, tenant: str = "acme", version: int = 2) -> None:
        """Soft-delete a document in the index but leave the graph stale, as a lagging graph would be."""
        delete = chunks_enriched(
            op=ChangeOp.DELETE,
            tenant=tenant,
            document_id=document_id,
            version=version,
            backend=self.backend,
        )
        index_event(delete, index=self.index, collection=COLLECTION, now=NOW)
