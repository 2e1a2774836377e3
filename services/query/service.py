"""The query service layer: embed the query, run each retriever inside the tenant/ACL pre-filter, fuse,
optionally rerank, then group and page."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from opentelemetry import trace

from schemas import (
    ChunkMatch,
    Fusion,
    GroupBy,
    RetrieverScore,
    SearchHit,
    SearchMode,
    SearchPage,
    SearchRequest,
    SparseVector,
)
from services.graph_builder.domain import Subgraph
from services.graph_builder.errors import GraphStoreError, InvalidTraversal, UnknownEntity
from services.graph_builder.graph import neighbourhood
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.indexer.ports import IndexFilter, IndexHit, VectorIndex
from services.query.config import QuerySettings
from services.query.errors import (
    EntityNotFound,
    FeatureUnavailable,
    GraphStoreUnavailable,
    IndexNotReady,
    InvalidGraphQuery,
    RerankerUnavailable,
    UnknownIndex,
)
from services.query.graph_retrieval import (
    GazetteerLinker,
    GraphRetriever,
    NerLinker,
    QueryLinker,
    chunk_point_ids,
)
from services.query.logic import (
    DEFAULT_WEIGHTS,
    Fused,
    Scored,
    distribution_based_fusion,
    first_per_document,
    group_by_document,
    page,
    reciprocal_rank_fusion,
    rerank_order,
    single_list,
)
from services.query.rerank import Reranker, build_reranker

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

EmbedQuery = Callable[[str], list[float]]
EncodeSparseQuery = Callable[[str], SparseVector]

CHUNKS_PER_DOCUMENT = 3  # chunk depth per document asked for, when hits are grouped by document


@dataclass(frozen=True)
class Retrieval:
    """Fused chunk hits, best first, and the entities the graph recognised in the query."""

    hits: list[Fused]
    entities: list[str] = field(default_factory=list)
    collection: str | None = None  # the collection that answered


@dataclass
class QueryService:
    index: VectorIndex
    alias: str
    embed_query: EmbedQuery
    encode_sparse_query: EncodeSparseQuery
    candidates: int = 100  # per retriever, before fusion
    graph: GraphRetriever | None = None
    reranker: Reranker | None = None
    # Collections of different models (a migration's two sides): the query is embedded with the model
    # of the collection it searches, and `index` may name only a collection of this alias.
    embed_for: Callable[[str], EmbedQuery] | None = None
    index_allowed: Callable[[str], bool] | None = None

    def _target(self, request: SearchRequest) -> str:
        if request.index is None:
            return self.collection()
        if self.index_allowed is None or not self.index_allowed(request.index):
            raise UnknownIndex(f"no collection {request.index!r} behind alias {self.alias!r}")
        return request.index

    def collection(self) -> str:
        name = self.index.resolve_alias(self.alias)
        if name is None:
            raise IndexNotReady(f"no collection behind alias {self.alias!r} yet; ingest a document first")
        return name

    def retrieve(self, request: SearchRequest, *, depth: int | None = None) -> Retrieval:
        """Fused (and, when asked, reranked) chunk hits; tenant, ACL and metadata filters apply inside
        every index query, the graph's chunks included."""
        if request.rerank and self.reranker is None:
            raise RerankerUnavailable("this server has no reranker (set HEADWATER_QUERY_RERANKER)")
        if request.graph and self.graph is None:
            raise FeatureUnavailable("this server has no knowledge graph to expand queries over")
        collection = self._target(request)
        embed_query = self.embed_for(collection) if self.embed_for is not None else self.embed_query
        scope = IndexFilter(
            tenant=request.tenant,
            acl_any=request.acl,
            match=list(request.filters.match),
            range=list(request.filters.range),
            date_range=list(request.filters.date_range),
            document_ids=request.filters.document_ids,
        )
        depth = max(depth or request.top_k, self.candidates)
        lists: dict[str, list[Scored]] = {}
        if request.mode in (SearchMode.DENSE, SearchMode.HYBRID):
            with _step("dense", depth=depth) as span:
                vector = embed_query(request.query)
                lists["dense"] = _scored(
                    self.index.search(collection, using="dense", vector=vector, filter=scope, limit=depth)
                )
                span.set_attribute("headwater.hits", len(lists["dense"]))
        if request.mode in (SearchMode.SPARSE, SearchMode.HYBRID):
            with _step("sparse", depth=depth) as span:
                sparse = self.encode_sparse_query(request.query)
                found = (
                    self.index.search(collection, using="sparse", vector=sparse, filter=scope, limit=depth)
                    if sparse.indices
                    else []
                )
                lists["sparse"] = _scored(found)
                span.set_attribute("headwater.hits", len(found))
        entities: list[str] = []
        if request.graph:
            with _step("graph", depth=depth, hops=request.graph_hops) as span:
                entities, lists["graph"] = self._graph_list(collection, scope, request, depth=depth)
                span.set_attributes(
                    {"headwater.hits": len(lists["graph"]), "headwater.entities": len(entities)}
                )
        with _step("fusion", method=request.fusion.value, lists=len(lists)) as span:
            hits = self._fuse(lists, request)
            span.set_attribute("headwater.hits", len(hits))
        if request.rerank:
            with _step("rerank", depth=request.rerank_depth):
                hits = self._rerank(request.query, hits, depth=request.rerank_depth)
        return Retrieval(hits=hits, entities=entities, collection=collection)

    def search(self, request: SearchRequest) -> SearchPage:
        """One page of hits, in a span whose children are the retrievers, fusion and reranking."""
        attributes = {
            "headwater.tenant": request.tenant,
            "headwater.query.mode": request.mode.value,
            "headwater.query.top_k": request.top_k,
            "headwater.query.offset": request.offset,
            "headwater.query.graph": request.graph,
            "headwater.query.rerank": request.rerank,
        }
        # Never the query's text: it may hold personal data.
        with tracer.start_as_current_span(
            "query search", attributes=attributes, record_exception=False
        ) as span:
            found = self._search(request)
            span.set_attribute("headwater.hits", len(found.hits))
            return found

    def _search(self, request: SearchRequest) -> SearchPage:
        started = time.perf_counter()
        window = request.offset + request.top_k
        if request.group_by is GroupBy.DOCUMENT:
            retrieval = self.retrieve(request, depth=window * CHUNKS_PER_DOCUMENT)
            groups = group_by_document(retrieval.hits, per_document=request.group_size)
            shown, next_offset = page(groups, offset=request.offset, size=request.top_k)
            hits = [_to_hit(g.best, explain=request.explain, chunks=g.chunks) for g in shown]
        else:
            retrieval = self.retrieve(request, depth=window)
            chunks, next_offset = page(retrieval.hits, offset=request.offset, size=request.top_k)
            hits = [_to_hit(h, explain=request.explain) for h in chunks]
        return SearchPage(
            query=request.query,
            mode=request.mode,
            hits=hits,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            offset=request.offset,
            next_offset=next_offset,
            entities=retrieval.entities if request.explain and request.graph else None,
            index=retrieval.collection,
        )

    def search_documents(self, request: SearchRequest, *, limit: int) -> list[Fused]:
        """Document-level ranking (each document at its best chunk's rank), for evaluation."""
        hits = self.retrieve(request, depth=limit * CHUNKS_PER_DOCUMENT).hits
        return first_per_document(hits, limit=limit)

    def entity_neighbourhood(self, *, tenant: str, entity_id: str, hops: int, fanout: int) -> Subgraph:
        """An entity of the tenant's graph with its neighbours up to `hops` away, `fanout` per node."""
        if self.graph is None:
            raise FeatureUnavailable("this server has no knowledge graph")
        with _graph_errors():
            try:
                return neighbourhood(self.graph.store, tenant, entity_id, hops=hops, fanout=fanout)
            except UnknownEntity as exc:
                raise EntityNotFound(f"no entity {entity_id!r} in this tenant's graph") from exc
            except InvalidTraversal as exc:
                raise InvalidGraphQuery(str(exc)) from exc

    def _graph_list(
        self, collection: str, scope: IndexFilter, request: SearchRequest, *, depth: int
    ) -> tuple[list[str], list[Scored]]:
        """Chunks the graph proposes, read back through the index under the caller's own filter."""
        assert self.graph is not None
        with _graph_errors():
            found = self.graph.retrieve(request.tenant, request.query, hops=request.graph_hops, limit=depth)
        entities = [e.entity_id for e in found.entities]
        scores = chunk_point_ids(request.tenant, found.chunks)
        if not scores:
            return entities, []
        visible = self.index.scroll(
            collection, filter=dataclasses.replace(scope, point_ids=list(scores)), limit=len(scores)
        )
        by_id = {h.id: h for h in visible}
        return entities, [(pid, s, by_id[pid].payload) for pid, s in scores.items() if pid in by_id]

    def _fuse(self, lists: dict[str, list[Scored]], request: SearchRequest) -> list[Fused]:
        if len(lists) == 1:
            ((name, hits),) = lists.items()
            return single_list(name, hits)
        weights = DEFAULT_WEIGHTS | {str(k): v for k, v in (request.weights or {}).items()}
        if request.fusion is Fusion.RRF:
            return reciprocal_rank_fusion(lists, k=request.rrf_k, weights=weights)
        return distribution_based_fusion(lists, weights=weights)

    def _rerank(self, query: str, hits: list[Fused], *, depth: int) -> list[Fused]:
        assert self.reranker is not None
        head = hits[:depth]
        scores = self.reranker.score(query, [str(h.payload.get("text", "")) for h in head])
        return rerank_order(hits, scores)


def _step(name: str, **attributes: str | int) -> AbstractContextManager[trace.Span]:
    """A child span of a search: its counts and settings, never the query."""
    return tracer.start_as_current_span(
        f"query {name}",
        attributes={f"headwater.{key}": value for key, value in attributes.items()},
        record_exception=False,  # the exception's type is on the status; its message may quote the query
    )


@contextmanager
def _graph_errors() -> Iterator[None]:
    try:
        yield
    except GraphStoreError as exc:
        raise GraphStoreUnavailable(str(exc)) from exc


def _scored(hits: Sequence[IndexHit]) -> list[Scored]:
    return [(h.id, h.score, h.payload) for h in hits]


def _to_hit(hit: Fused, *, explain: bool, chunks: Sequence[Fused] | None = None) -> SearchHit:
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
        explain=(
            {
                name: RetrieverScore(rank=rank, score=round(hit.scores.get(name, 0.0), 6))
                for name, rank in hit.ranks.items()
            }
            if explain
            else None
        ),
        chunks=(
            [
                ChunkMatch(
                    chunk_id=str(c.payload["chunk_id"]), score=round(c.score, 6), text=str(c.payload["text"])
                )
                for c in chunks
            ]
            if chunks is not None
            else None
        ),
    )


def build_query_service(
    settings: QuerySettings,
    *,
    index: VectorIndex,
    alias: str,
    embed_query: EmbedQuery,
    encode_sparse_query: EncodeSparseQuery,
    graph_store: GraphStore | None,
    recognizer: EntityRecognizer | None = None,
    reranker: Reranker | None = None,
    embed_for: Callable[[str], EmbedQuery] | None = None,
    index_allowed: Callable[[str], bool] | None = None,
) -> QueryService:
    """The query service with its graph retriever and reranker as configured; a reranker that cannot
    be loaded leaves `rerank` requests refused rather than the service down."""
    if reranker is None:
        try:
            reranker = build_reranker(
                settings.reranker,
                tei_url=settings.rerank_tei_url,
                model=settings.rerank_model,
                timeout=settings.rerank_timeout_s,
            )
        except RerankerUnavailable as exc:
            logger.warning("reranking unavailable: %s", exc)
    graph = None
    if graph_store is not None:
        graph = GraphRetriever(
            store=graph_store,
            linker=_linker(settings, recognizer),
            fanout=settings.graph_fanout,
            decay=settings.graph_decay,
        )
    return QueryService(
        index=index,
        alias=alias,
        embed_query=embed_query,
        encode_sparse_query=encode_sparse_query,
        candidates=settings.candidates,
        graph=graph,
        reranker=reranker,
        embed_for=embed_for,
        index_allowed=index_allowed,
    )


def _linker(settings: QuerySettings, recognizer: EntityRecognizer | None) -> QueryLinker:
    if settings.graph_linker == "gazetteer":
        return GazetteerLinker()
    if recognizer is None:  # the composition root builds one (spaCy) when NER linking is configured
        raise ValueError("HEADWATER_QUERY_GRAPH_LINKER=ner needs an entity recognizer")
    return NerLinker(recognizer)
