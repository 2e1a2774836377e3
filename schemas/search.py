"""Query API contract: `POST /v1/search`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from schemas.common import AclGroup, Contract, DocumentId, MetadataValue

MAX_QUERY_CHARS = 2048
MAX_TOP_K = 100
MAX_RESULT_WINDOW = 1000  # offset + top_k: deeper pages cost a deeper search in every retriever
MAX_RERANK_DEPTH = 200
MAX_MATCH_VALUES = 256  # values of one `any` filter
MAX_ACL_GROUPS = 64
RRF_K = 60  # the constant of Cormack et al.; robust across collections

# Dots separate path segments, and the engine refuses an empty one ("a.", "a..b") with a server error.
MetadataKey = Annotated[
    str, StringConstraints(max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
]
# Integers a filter compares with: stored payload integers are 64-bit, and the engine fails on larger ones.
FilterInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
FilterValue = str | FilterInt | float | bool | None | list[str] | list[FilterInt] | list[float]


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


class Retriever(StrEnum):
    """A ranked list that fusion merges: the two vector searches and the knowledge-graph expansion."""

    DENSE = "dense"
    SPARSE = "sparse"
    GRAPH = "graph"


class Fusion(StrEnum):
    """How the ranked lists are merged (hybrid mode, or any mode with `graph`)."""

    DBSF = "dbsf"  # distribution-based score fusion: scores normalised by mean ± 3σ, then summed
    RRF = "rrf"  # reciprocal rank fusion: Σ weight / (rrf_k + rank)


class GroupBy(StrEnum):
    DOCUMENT = "document"  # one hit per document, at its best chunk, with its best chunks attached


class MatchFilter(Contract):
    """`metadata[key]` equals `value`, or equals any of `any` (exactly one of the two)."""

    key: MetadataKey
    value: FilterValue = None
    any: list[str | FilterInt] | None = Field(default=None, max_length=MAX_MATCH_VALUES)


class RangeFilter(Contract):
    key: MetadataKey
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None


class DateRangeFilter(Contract):
    """`metadata[key]` holds an ISO 8601 date or date-time inside the bounds; a bare date means midnight,
    and a date-time without an offset is taken as UTC, on the stored values and on the bounds alike."""

    key: MetadataKey
    gte: datetime | None = None
    lte: datetime | None = None
    gt: datetime | None = None
    lt: datetime | None = None


class SearchFilters(Contract):
    """All conditions must hold. Tenant and ACL scoping are added by the server, never by the caller."""

    match: list[MatchFilter] = Field(default_factory=list, max_length=16)
    range: list[RangeFilter] = Field(default_factory=list, max_length=16)
    date_range: list[DateRangeFilter] = Field(default_factory=list, max_length=16)
    document_ids: list[DocumentId] | None = Field(default=None, max_length=1000)


class SearchRequest(Contract):
    query: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)]
    # Must be the API key's tenant (403 otherwise); the server searches that tenant only.
    tenant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    mode: SearchMode = SearchMode.HYBRID
    fusion: Fusion = Fusion.DBSF
    rrf_k: Annotated[int, Field(ge=1, le=1000)] = RRF_K
    # Fusion weight per list; unset: dense 1, sparse 1, graph 0.25.
    weights: dict[Retriever, Annotated[float, Field(ge=0, le=100)]] | None = None
    graph: bool = False  # add the knowledge-graph list: entities of the query, expanded over the graph
    graph_hops: Annotated[int, Field(ge=1, le=2)] = 1
    rerank: bool = False  # second stage: the server's reranker rescores the first `rerank_depth` hits
    rerank_depth: Annotated[int, Field(ge=1, le=MAX_RERANK_DEPTH)] = 50
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] = 10
    offset: Annotated[int, Field(ge=0, lt=MAX_RESULT_WINDOW)] = 0
    group_by: GroupBy | None = None
    group_size: Annotated[int, Field(ge=1, le=10)] = 3  # chunks attached to each document when grouped
    explain: bool = False  # each hit gets every retriever's rank and score
    filters: SearchFilters = Field(default_factory=SearchFilters)
    # A collection of this alias to search instead of the one the alias points at (e.g. both sides of a
    # model migration, side by side); the query is embedded with that collection's model.
    index: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}$")] | None = None
    # Narrows the API key's ACL groups (never widens them). Without access control (local and test only)
    # it is trusted as sent, and None means no ACL restriction.
    acl: list[AclGroup] | None = Field(default=None, max_length=MAX_ACL_GROUPS)

    @model_validator(mode="after")
    def _window_is_bounded(self) -> Self:
        if self.offset + self.top_k > MAX_RESULT_WINDOW:
            raise ValueError(f"offset + top_k must be at most {MAX_RESULT_WINDOW}")
        return self


class RetrieverScore(Contract):
    rank: int  # 1-based rank in that retriever's list
    score: float  # that retriever's own score (cosine, BM25, graph weight, reranker score)


class ChunkMatch(Contract):
    """One of a document's best chunks, when hits are grouped by document."""

    chunk_id: str
    score: float
    text: str


class SearchHit(Contract):
    document_id: str
    chunk_id: str
    score: float
    text: str
    title: str | None = None
    version: int
    retrievers: dict[str, int]  # retriever name -> 1-based rank in its list
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    explain: dict[str, RetrieverScore] | None = None  # with `explain`: retriever (or "rerank") -> rank, score
    chunks: list[ChunkMatch] | None = None  # with `group_by: document`: the document's best chunks


class SearchPage(Contract):
    query: str
    mode: SearchMode
    hits: list[SearchHit]
    took_ms: float
    offset: int = 0
    next_offset: int | None = None  # the offset of the next page, when there is one
    entities: list[str] | None = None  # with `graph` and `explain`: the entities recognised in the query
    index: str | None = None  # the collection that answered (the alias's at the time of the request)
