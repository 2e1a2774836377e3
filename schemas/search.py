"""Query API contract: `POST /v1/search`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.common import Contract, MetadataValue

MAX_QUERY_CHARS = 2048
MAX_TOP_K = 100


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


class Fusion(StrEnum):
    """How hybrid mode merges the dense and sparse lists."""

    DBSF = "dbsf"  # distribution-based score fusion: scores normalised by mean ± 3σ, then summed
    RRF = "rrf"  # reciprocal rank fusion, k = 60


class MatchFilter(Contract):
    """`metadata[key]` equals `value`, or equals any of `any` (exactly one of the two)."""

    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
    value: MetadataValue = None
    any: list[str | int] | None = None


class RangeFilter(Contract):
    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None


class SearchFilters(Contract):
    """All conditions must hold. Tenant and ACL scoping are added by the server, never by the caller."""

    match: list[MatchFilter] = Field(default_factory=list, max_length=16)
    range: list[RangeFilter] = Field(default_factory=list, max_length=16)
    document_ids: list[str] | None = Field(default=None, max_length=1000)


class SearchRequest(Contract):
    query: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)]
    tenant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    mode: SearchMode = SearchMode.HYBRID
    fusion: Fusion = Fusion.DBSF
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] = 10
    filters: SearchFilters = Field(default_factory=SearchFilters)
    acl: list[str] | None = None  # the caller's groups; None = no ACL restriction (embedded, trusted caller)


class SearchHit(Contract):
    document_id: str
    chunk_id: str
    score: float
    text: str
    title: str | None = None
    version: int
    retrievers: dict[str, int]  # retriever name -> 1-based rank in its list
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class SearchPage(Contract):
    query: str
    mode: SearchMode
    hits: list[SearchHit]
    took_ms: float
