"""The query service layer: embed the query, run each retriever inside the tenant/ACL pre-filter, fuse."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from schemas import Fusion, SearchHit, SearchMode, SearchPage, SearchRequest, SparseVector
from services.indexer.ports import IndexFilter, IndexHit, VectorIndex
from services.query.errors import IndexNotReady
from services.query.logic import (
    Fused,
    distribution_based_fusion,
    first_per_document,
    reciprocal_rank_fusion,
    single_list,
)

EmbedQuery = Callable[[str], list[float]]
EncodeSparseQuery = Callable[[str], SparseVector]


@dataclass
class QueryService:
    index: VectorIndex
    alias: str
    embed_query: EmbedQuery
    encode_sparse_query: EncodeSparseQuery
    candidates: int = 100  # per retriever, before fusion

    def collection(self) -> str:
        name = self.index.resolve_alias(self.alias)
        if name is None:
            raise IndexNotReady(f"no collection behind alias {self.alias!r} yet; ingest a document first")
        return name

    def retrieve(self, request: SearchRequest, *, limit: int | None = None) -> list[Fused]:
        """Fused chunk hits for a request, best first; tenant and ACL filters apply inside each query."""
        collection = self.collection()
        query_filter = IndexFilter(
            tenant=request.tenant,
            acl_any=request.acl,
            match=list(request.filters.match),
            range=list(request.filters.range),
            document_ids=request.filters.document_ids,
        )
        depth = max(limit or request.top_k, self.candidates)
        lists: dict[str, list[IndexHit]] = {}
        if request.mode in (SearchMode.DENSE, SearchMode.HYBRID):
            lists["dense"] = self.index.search(
                collection,
                using="dense",
                vector=self.embed_query(request.query),
                filter=query_filter,
                limit=depth,
            )
        if request.mode in (SearchMode.SPARSE, SearchMode.HYBRID):
            sparse = self.encode_sparse_query(request.query)
            lists["sparse"] = (
                self.index.search(collection, using="sparse", vector=sparse, filter=query_filter, limit=depth)
                if sparse.indices
                else []
            )
        if request.mode is SearchMode.HYBRID and request.fusion is Fusion.DBSF:
            return distribution_based_fusion(
                {name: [(h.id, h.score, h.payload) for h in hits] for name, hits in lists.items()}
            )
        if request.mode is SearchMode.HYBRID:
            return reciprocal_rank_fusion(
                {name: [(h.id, h.payload) for h in hits] for name, hits in lists.items()}
            )
        ((name, hits),) = lists.items()
        return single_list(name, [(h.id, h.score, h.payload) for h in hits])

    def search(self, request: SearchRequest) -> SearchPage:
        started = time.perf_counter()
        hits = self.retrieve(request)[: request.top_k]
        return SearchPage(
            query=request.query,
            mode=request.mode,
            hits=[_to_hit(h) for h in hits],
            took_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    def search_documents(self, request: SearchRequest, *, limit: int) -> list[Fused]:
        """Document-level ranking (each document at its best chunk's rank), for evaluation."""
        return first_per_document(self.retrieve(request, limit=limit * 3), limit=limit)


def _to_hit(hit: Fused) -> SearchHit:
    payload = hit.payload
    return SearchHit(
        document_id=str(payload["document_id"]),
        chunk_id=str(payload["chunk_id"]),
        score=round(hit.score, 6),
        text=str(payload.get("text", "")),
        title=payload.get("title"),
        version=int(payload["doc_version"]),
        retrievers=hit.ranks,
        metadata=dict(payload.get("metadata") or {}),
    )
