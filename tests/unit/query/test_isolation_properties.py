"""Property: no search, filter or graph expansion ever returns a chunk the caller may not see.

Hypothesis generates tenants that share document ids, documents with ACL groups (or public) and
metadata, several versions of each, deletes, duplicate and out-of-order deliveries. Every change goes
through the pipeline's last two stages for real (`build_graph_for`, then `index_event`) onto a real index
adapter: the in-memory one for many cases, Qdrant-edge on disk for fewer. Callers (a tenant and ACL
groups, or none for a trusted caller) then send random queries in every mode, with the graph, grouping,
paging and filters that name other tenants' documents, metadata values, `any` lists and ranges.

Every hit must belong to the caller's tenant, carry no ACL group outside the caller's (unless public),
be live, be a chunk of its document's newest version, and satisfy the filters. Dense search at full
depth must also return every chunk the caller may see, so an over-strict filter fails here too.

Examples: the default `ci` profile runs 100 (in-memory) + 10 (edge) worlds; `HYPOTHESIS_PROFILE=thorough`
runs 10,000 + 500. Each world gets 1-4 queries (row 27 of the test plan asks for 10^4 cases in all).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    ChangeOp,
    Chunk,
    Fusion,
    GroupBy,
    MatchFilter,
    RangeFilter,
    SearchFilters,
    SearchMode,
    SearchRequest,
)
from services.chunker.logic import chunk_id_for, content_hash
from services.embedder.adapters.fake import HashingBackend
from services.embedder.sparse import SparseEncoder
from services.graph_builder.adapters.memory import MemoryGraphStore
from services.graph_builder.service import build_graph_for
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.ports import LIVE, CollectionSpec, VectorIndex
from services.indexer.service import index_event
from services.query.graph_retrieval import GazetteerLinker, GraphRetriever
from services.query.service import QueryService
from tests.builders import chunk, chunks_embedded

TENANTS = ("acme", "globex", "initech")
DOC_IDS = ("d1", "d2", "d3", "only-in-one")  # shared across tenants: the same id must never mix
GROUPS = ("eng", "sales", "hr")
WORDS = ("refund", "invoice", "laptop", "policy", "travel", "budget", "salary", "merger", "audit", "risk")
ENTITIES = {"Aspirin": "PRODUCT", "Marie Curie": "PERSON", "Paris": "GPE"}
NOW = datetime(2025, 1, 2, tzinfo=UTC)
ALIAS, COLLECTION = "chunks", "chunks_v1"
BACKEND = HashingBackend(dimension=32)
SPARSE = SparseEncoder()

MEMORY_EXAMPLES = settings().max_examples  # from the profile (tests/conftest.py): ci 100, thorough 10,000
EDGE_EXAMPLES = max(10, MEMORY_EXAMPLES // 20)  # a shard on disk per example: about 20 times slower
# The thorough profile runs for many minutes, past the suite's per-test timeout.
pytestmark = pytest.mark.timeout(0 if MEMORY_EXAMPLES > 1000 else 600)


@dataclass(frozen=True)
class Change:
    """One version of one document as its source produced it (a delete carries no text)."""

    tenant: str
    document_id: str
    version: int
    op: ChangeOp
    texts: tuple[str, ...]
    acl: tuple[str, ...]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Query:
    request: SearchRequest
    trusted: bool  # sent without ACL groups: the embedded, trusted caller who may see every group


# -- strategies ----------------------------------------------------------------------------------------

texts = st.lists(
    st.builds(
        lambda words, entity: " ".join([*words, *([entity] if entity else [])]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
        st.none() | st.sampled_from(sorted(ENTITIES)),
    ),
    max_size=3,
)
metadata = st.fixed_dictionaries(
    {"year": st.integers(2000, 2004), "pinned": st.booleans()},
    optional={"team": st.sampled_from(["red", "blue"])},
)


@st.composite
def deliveries(draw: st.DrawFn) -> list[Change]:
    """Each document's versions (distinct, some deletes), delivered in any order with duplicates."""
    changes = []
    for tenant in draw(st.lists(st.sampled_from(TENANTS), min_size=1, max_size=3, unique=True)):
        docs = DOC_IDS if tenant == "acme" else DOC_IDS[:3]
        for document_id in draw(st.lists(st.sampled_from(docs), min_size=1, max_size=4, unique=True)):
            for version in draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True)):
                delete = draw(st.integers(0, 4)) == 0
                changes.append(
                    Change(
                        tenant=tenant,
                        document_id=document_id,
                        version=version,
                        op=ChangeOp.DELETE if delete else ChangeOp.UPSERT,
                        texts=() if delete else tuple(draw(texts)),
                        acl=tuple(draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))),
                        metadata=draw(metadata),
                    )
                )
    duplicates = draw(st.lists(st.sampled_from(changes), max_size=3))
    return list(draw(st.permutations(changes + duplicates)))


match_filters = st.one_of(
    st.builds(MatchFilter, key=st.just("team"), value=st.none() | st.sampled_from(["red", "blue"])),
    st.builds(MatchFilter, key=st.just("pinned"), value=st.booleans()),
    st.builds(MatchFilter, key=st.just("year"), value=st.integers(2000, 2004)),
    st.builds(
        MatchFilter,
        key=st.sampled_from(["team", "year"]),
        any=st.lists(st.sampled_from(["red", "blue", 2001, 2003]), min_size=1, max_size=3),
    ),
)
range_filters = st.builds(
    RangeFilter,
    key=st.sampled_from(["year", "team"]),
    gte=st.none() | st.integers(1999, 2005).map(float),
    lt=st.none() | st.integers(1999, 2005).map(float),
)
filters = st.builds(
    SearchFilters,
    match=st.lists(match_filters, max_size=2),
    range=st.lists(range_filters, max_size=1),
    document_ids=st.none() | st.lists(st.sampled_from([*DOC_IDS, "nowhere"]), max_size=3),
)


@st.composite
def queries(draw: st.DrawFn, tenants: list[str]) -> Query:
    """A caller of one of the world's tenants (or of none), a query in any mode, maybe filters."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
    words += draw(st.lists(st.sampled_from(sorted(ENTITIES)), max_size=2))  # for the graph to link
    trusted = draw(st.integers(0, 4)) == 0
    request = SearchRequest(
        query=" ".join(words),
        tenant=draw(st.sampled_from(tenants * 3 + list(TENANTS))),  # mostly a tenant with documents
        mode=draw(st.sampled_from(SearchMode)),
        fusion=draw(st.sampled_from(Fusion)),
        graph=draw(st.booleans()),
        graph_hops=draw(st.integers(1, 2)),
        top_k=draw(st.sampled_from([1, 3, 10, 100])),
        offset=draw(st.sampled_from([0, 0, 2])),
        group_by=draw(st.none() | st.just(GroupBy.DOCUMENT)),
        filters=draw(st.just(SearchFilters()) | filters),
        acl=None
        if trusted
        else draw(st.lists(st.sampled_from([*GROUPS, "nobody"]), max_size=2, unique=True)),
    )
    return Query(request=request, trusted=trusted)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Change], list[Query]]:
    changes = draw(deliveries())
    tenants = sorted({c.tenant for c in changes})
    return changes, draw(st.lists(queries(tenants), min_size=1, max_size=4))


# -- the pipeline's last two stages, and the model they must agree with ---------------------------------


def _chunk(change: Change, position: int, text: str) -> Chunk:
    """The chunk as the chunker would cut it (its id), with the mentions a recogniser would find."""
    digest = content_hash(text)
    chunk_id = chunk_id_for(
        tenant=change.tenant, document_id=change.document_id, position=position, content_hash=digest
    )
    return chunk(chunk_id, text, ENTITIES, position=position)


def deliver(change: Change, *, index: VectorIndex, graph: MemoryGraphStore) -> None:
    """Graph, then index, as the graph builder and the indexer handle one event."""
    embedded = chunks_embedded(
        *[_chunk(change, i, t) for i, t in enumerate(change.texts)],
        backend=BACKEND,
        sparse=SPARSE.encode_document,
        op=change.op,
        tenant=change.tenant,
        document_id=change.document_id,
        version=change.version,
        occurred_at=NOW,
        title=f"{change.document_id} v{change.version}",
        metadata=change.metadata if change.op is ChangeOp.UPSERT else {},
        acl=list(change.acl) if change.op is ChangeOp.UPSERT else [],
    )
    enriched = build_graph_for(embedded, recognizer=None, store=graph)
    index_event(enriched, index=index, collection=COLLECTION, now=NOW)


@dataclass(frozen=True)
class Expected:
    """A chunk the model says is live: its document's newest version is an upsert that holds it."""

    tenant: str
    document_id: str
    chunk_id: str
    version: int
    text: str
    acl: tuple[str, ...]
    metadata: dict[str, Any]


def live_chunks(changes: list[Change]) -> dict[tuple[str, str, str], Expected]:
    newest: dict[tuple[str, str], Change] = {}
    for change in changes:
        key = (change.tenant, change.document_id)
        if key not in newest or change.version > newest[key].version:
            newest[key] = change
    out = {}
    for change in newest.values():
        if change.op is ChangeOp.UPSERT:
            for i, text in enumerate(change.texts):
                chunk_id = _chunk(change, i, text).chunk_id
                out[(change.tenant, change.document_id, chunk_id)] = Expected(
                    change.tenant,
                    change.document_id,
                    chunk_id,
                    change.version,
                    text,
                    change.acl,
                    change.metadata,
                )
    return out


def _same(stored: object, wanted: object) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    return stored == wanted


def passes(f: SearchFilters, document_id: str, meta: dict[str, Any]) -> bool:
    """The filter semantics the API documents, written independently of every adapter."""
    if f.document_ids is not None and document_id not in f.document_ids:
        return False
    for m in f.match:
        stored = meta.get(m.key)
        if m.any is not None:
            ok = stored is not None and any(_same(stored, w) for w in m.any)
        elif m.value is None:
            ok = stored is None
        else:
            ok = stored is not None and _same(stored, m.value)
        if not ok:
            return False
    for r in f.range:
        x = meta.get(r.key)
        if isinstance(x, bool) or not isinstance(x, int | float):
            return False
        if not (
            (r.gte is None or x >= r.gte)
            and (r.gt is None or x > r.gt)
            and (r.lte is None or x <= r.lte)
            and (r.lt is None or x < r.lt)
        ):
            return False
    return True


def may_see(query: Query, chunk: Expected) -> bool:
    request = query.request
    if chunk.tenant != request.tenant:
        return False
    if not query.trusted and chunk.acl and not set(chunk.acl) & set(request.acl or []):
        return False
    return passes(request.filters, chunk.document_id, chunk.metadata)


# -- the property ----------------------------------------------------------------------------------------


def check(index: VectorIndex, changes: list[Change], asked: list[Query]) -> None:
    index.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=BACKEND.dimension))
    index.switch_alias(ALIAS, COLLECTION)
    graph = MemoryGraphStore()
    for change in changes:
        deliver(change, index=index, graph=graph)
    service = QueryService(
        index=index,
        alias=ALIAS,
        embed_query=lambda text: [float(x) for x in BACKEND.embed([text])[0]],
        encode_sparse_query=SPARSE.encode_query,
        candidates=100,
        graph=GraphRetriever(store=graph, linker=GazetteerLinker()),
    )
    live = live_chunks(changes)
    for query in asked:
        request = query.request
        visible = {key: chunk for key, chunk in live.items() if may_see(query, chunk)}
        for hit in service.retrieve(request).hits:
            p = hit.payload
            assert p["tenant"] == request.tenant, f"another tenant's chunk: {p['tenant']}"
            assert p["state"] == LIVE, "a soft-deleted chunk"
            if not query.trusted:
                assert not p["acl"] or set(p["acl"]) & set(request.acl or []), f"ACL {p['acl']} not shared"
            key = (request.tenant, str(p["document_id"]), str(p["chunk_id"]))
            assert key in live, "a chunk of a superseded or deleted version"
            assert p["doc_version"] == live[key].version, "a chunk carrying an old version"
            assert key in visible, "a chunk outside the filters"
        page = service.search(request)
        for shown in page.hits:
            key = (request.tenant, shown.document_id, shown.chunk_id)
            assert key in visible, "search returned a chunk the caller may not see"
            assert (shown.version, shown.text) == (visible[key].version, visible[key].text)
            for grouped in shown.chunks or []:
                assert (request.tenant, shown.document_id, grouped.chunk_id) in visible
        # Soundness alone would pass an index that returns nothing: at full depth, dense must be complete.
        everything = request.model_copy(
            update={"mode": SearchMode.DENSE, "graph": False, "group_by": None, "offset": 0, "top_k": 100}
        )
        found = service.search(everything).hits
        assert {(request.tenant, h.document_id, h.chunk_id) for h in found} == set(visible)


@settings(max_examples=MEMORY_EXAMPLES, deadline=None)
@given(cases())
def test_no_query_sees_past_its_tenant_acl_or_the_newest_version_in_memory(
    case: tuple[list[Change], list[Query]],
) -> None:
    check(InMemoryIndex(), *case)


@contextmanager
def _edge_index() -> Iterator[EdgeIndex]:
    with tempfile.TemporaryDirectory(prefix="isolation-") as root:
        index = EdgeIndex(Path(root))
        try:
            yield index
        finally:
            index.close()


@settings(max_examples=EDGE_EXAMPLES, deadline=None)
@given(cases())
def test_no_query_sees_past_its_tenant_acl_or_the_newest_version_on_qdrant_edge(
    case: tuple[list[Change], list[Query]],
) -> None:
    with _edge_index() as index:
        check(index, *case)
