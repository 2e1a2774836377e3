"""One contract, three engines: qdrant-edge, qdrant-client local mode, and the in-memory fake."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from schemas import ChangeOp, ChunksEnriched, DateRangeFilter, MatchFilter, RangeFilter, SparseVector
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.adapters.qdrant import QdrantIndex
from services.indexer.errors import CollectionNotFound, IndexConfigError
from services.indexer.ports import CollectionSpec, IndexFilter, IndexHit, IndexPoint, VectorIndex
from services.indexer.service import IndexOutcome, index_event
from tests.builders import DIM, NOW, make_event

Opener = Callable[[], VectorIndex]
SPEC = CollectionSpec(name="chunks_v1", dense_dim=4)


def _openers(tmp_path: Path) -> dict[str, Opener]:
    return {
        "edge": lambda: EdgeIndex(tmp_path / "edge"),
        "qdrant": lambda: QdrantIndex(QdrantClient(path=str(tmp_path / "qdrant"))),
        "memory": InMemoryIndex,
    }


@pytest.fixture(params=["edge", "qdrant", "memory"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the engine's index on a fresh directory; opening again reopens the same data."""
    return _openers(tmp_path)[request.param]


@pytest.fixture
def index(opener: Opener) -> Iterator[VectorIndex]:
    idx = opener()
    idx.ensure_collection(SPEC)
    yield idx
    idx.close()


def _unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _point(
    name: str,
    *,
    tenant: str = "acme",
    dense: list[float] | None = None,
    sparse: dict[int, float] | None = None,
    acl: list[str] | None = None,
    metadata: dict[str, object] | None = None,
    document_id: str | None = None,
    state: str = "live",
) -> IndexPoint:
    terms = sparse or {1: 1.0}
    payload = {
        "tenant": tenant,
        "document_id": document_id or f"doc-{name}",
        "doc_version": 1,
        "chunk_id": name,
        "text": name,
        "acl": acl or [],
        "metadata": metadata or {},
        "entity_ids": [],
        "state": state,
        "deleted_at": None,
        "deleted_by_version": None,
    }
    return IndexPoint(
        id=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{tenant}/{name}")),
        dense=_unit(dense or [1.0, 0.0, 0.0, 0.0]),
        sparse=SparseVector(indices=sorted(terms), values=[terms[k] for k in sorted(terms)]),
        payload=payload,
    )


def _texts(hits: list[IndexHit]) -> list[str]:
    return [h.payload["text"] for h in hits]


def _scope(**kw: object) -> IndexFilter:
    return IndexFilter(tenant=str(kw.pop("tenant", "acme")), **kw)  # type: ignore[arg-type]


def test_dense_search_ranks_nearest_first(index: VectorIndex) -> None:
    index.upsert(
        SPEC.name,
        [
            _point("far", dense=[0, 0, 1, 0]),
            _point("near", dense=[1, 0.1, 0, 0]),
            _point("mid", dense=[1, 1, 0, 0]),
        ],
    )
    hits = index.search(SPEC.name, using="dense", vector=_unit([1, 0, 0, 0]), filter=_scope(), limit=3)
    assert _texts(hits) == ["near", "mid", "far"]
    assert hits[0].score > hits[1].score > hits[2].score
    assert _texts(index.search(SPEC.name, using="dense", vector=[1, 0, 0, 0], filter=_scope(), limit=1)) == [
        "near"
    ]


def test_sparse_search_weighs_rare_terms_by_idf(index: VectorIndex) -> None:
    # Without IDF "common" (weight 2) would beat "rare" (weight 1); IDF makes the rare term count more.
    common, rare = 10, 20
    index.upsert(
        SPEC.name,
        [
            _point("a", sparse={common: 2.0}),
            _point("b", sparse={rare: 1.0}),
            _point("c", sparse={common: 1.0}),
            _point("d", sparse={common: 1.0}),
        ],
    )
    query = SparseVector(indices=[common, rare], values=[1.0, 1.0])
    hits = index.search(SPEC.name, using="sparse", vector=query, filter=_scope(), limit=2)
    assert _texts(hits) == ["b", "a"]
    nothing = SparseVector(indices=[99], values=[1.0])
    assert index.search(SPEC.name, using="sparse", vector=nothing, filter=_scope(), limit=5) == []


def test_tenant_isolation_holds_even_when_filters_name_the_other_tenant(index: VectorIndex) -> None:
    index.upsert(
        SPEC.name,
        [
            _point("mine", tenant="acme", metadata={"owner": "acme"}, document_id="shared"),
            _point("theirs", tenant="globex", metadata={"owner": "globex"}, document_id="shared"),
        ],
    )
    for using, vector in (("dense", [1.0, 0, 0, 0]), ("sparse", SparseVector(indices=[1], values=[1.0]))):
        hits = index.search(SPEC.name, using=using, vector=vector, filter=_scope(), limit=10)  # type: ignore[arg-type]
        assert _texts(hits) == ["mine"]
    sneaky = _scope(match=[MatchFilter(key="owner", value="globex")], document_ids=["shared"])
    assert index.search(SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=sneaky, limit=10) == []
    assert index.scroll(SPEC.name, filter=sneaky, limit=10) == []
    assert index.count(SPEC.name, sneaky) == 0
    assert _texts(index.scroll(SPEC.name, filter=_scope(tenant="globex"), limit=10)) == ["theirs"]
    assert [h.payload["tenant"] for h in index.document_points(SPEC.name, "acme", "shared")] == ["acme"]


def test_acl_public_or_shared_group(index: VectorIndex) -> None:
    index.upsert(
        SPEC.name,
        [
            _point("public"),
            _point("g1", acl=["g1"]),
            _point("g2", acl=["g2"]),
            _point("g1g3", acl=["g1", "g3"]),
        ],
    )

    def visible(acl_any: list[str] | None) -> list[str]:
        return sorted(_texts(index.scroll(SPEC.name, filter=_scope(acl_any=acl_any), limit=10)))

    assert visible(None) == ["g1", "g1g3", "g2", "public"]
    assert visible(["g1"]) == ["g1", "g1g3", "public"]
    assert visible(["g3", "g2"]) == ["g1g3", "g2", "public"]
    assert visible([]) == ["public"]
    assert visible(["nobody"]) == ["public"]
    hits = index.search(
        SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=_scope(acl_any=["g2"]), limit=10
    )
    assert sorted(_texts(hits)) == ["g2", "public"]


def test_metadata_match_any_and_range_filters(index: VectorIndex) -> None:
    index.upsert(
        SPEC.name,
        [
            _point(
                "en", metadata={"lang": "en", "year": 2020, "tags": ["a", "b"], "draft": True, "score": 0.5}
            ),
            _point("de", metadata={"lang": "de", "year": 2023, "tags": ["b"], "draft": False, "score": 3.0}),
            _point("fr", metadata={"lang": "fr", "year": 2024, "tags": [], "score": 3}),
        ],
    )

    def names(**kw: object) -> list[str]:
        return sorted(_texts(index.scroll(SPEC.name, filter=_scope(**kw), limit=10)))

    def m(key: str, value: object = None, any_: list[str | int] | None = None) -> list[MatchFilter]:
        return [MatchFilter(key=key, value=value, any=any_)]

    assert names(match=m("lang", "de")) == ["de"]
    assert names(match=m("lang", any_=["de", "fr"])) == ["de", "fr"]
    assert names(match=m("year", any_=[2020, 2024])) == ["en", "fr"]
    assert names(match=m("year", 2023)) == ["de"]
    assert names(match=m("score", 3)) == ["de", "fr"]  # 3.0 and 3 are the same number
    assert names(match=m("tags", "b")) == ["de", "en"]
    assert names(match=m("tags", ["a", "b"])) == ["en"]
    assert names(match=m("draft", True)) == ["en"]
    assert names(match=m("draft", False)) == ["de"]
    assert names(match=m("draft")) == ["fr"]  # missing counts as empty
    assert names(match=m("lang", any_=[])) == []
    assert names(range=[RangeFilter(key="year", gte=2021, lt=2024)]) == ["de"]
    assert names(range=[RangeFilter(key="score", gt=0.5)]) == ["de", "fr"]
    assert names(match=m("lang", "en"), range=[RangeFilter(key="year", gte=2021)]) == []
    assert index.count(SPEC.name, _scope(match=m("tags", "b"))) == 2


def test_date_range_filters_compare_iso_dates_as_instants(index: VectorIndex) -> None:
    index.upsert(
        SPEC.name,
        [
            _point("day", metadata={"published": "2024-03-01"}),  # a bare date: midnight UTC
            _point("utc", metadata={"published": "2024-03-01T10:00:00Z"}),
            _point("offset", metadata={"published": "2024-03-02T01:00:00+02:00"}),  # 2024-03-01 23:00 UTC
            _point("naive", metadata={"published": "2024-03-05T08:00:00"}),  # no offset: UTC
            _point("list", metadata={"published": ["2023-01-01", "2024-06-30"]}),
            _point("junk", metadata={"published": "not a date"}),
            _point("number", metadata={"published": 20240301}),
            _point("missing"),
        ],
    )

    def names(**bounds: object) -> list[str]:
        scope = _scope(date_range=[DateRangeFilter(key="published", **bounds)])
        return sorted(_texts(index.scroll(SPEC.name, filter=scope, limit=10)))

    march_1 = datetime(2024, 3, 1, tzinfo=UTC)
    assert names(gte=march_1, lt=march_1 + timedelta(days=1)) == ["day", "offset", "utc"]
    assert names(gt=march_1, lte=datetime(2024, 3, 5, 8)) == ["naive", "offset", "utc"]  # naive bound: UTC
    assert names(gte=date(2024, 6, 1)) == ["list"]  # any of a list's values
    # 12:00 at +02:00 is 10:00 UTC: "utc" (10:00Z) is not strictly before it.
    assert names(lt=datetime(2024, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == ["day", "list"]
    scope = _scope(date_range=[DateRangeFilter(key="published", gt=march_1)])
    hits = index.search(SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=scope, limit=10)
    assert sorted(_texts(hits)) == ["list", "naive", "offset", "utc"]


def test_point_ids_filter_narrows_inside_the_scope(index: VectorIndex) -> None:
    mine, hidden, theirs = _point("mine"), _point("hidden", acl=["g1"]), _point("theirs", tenant="globex")
    index.upsert(SPEC.name, [mine, hidden, theirs, _point("other")])
    wanted = [mine.id, hidden.id, theirs.id]
    assert sorted(_texts(index.scroll(SPEC.name, filter=_scope(point_ids=wanted), limit=10))) == [
        "hidden",
        "mine",
    ]
    # The other conditions still hold: ids never widen what a caller may see.
    assert _texts(index.scroll(SPEC.name, filter=_scope(point_ids=wanted, acl_any=[]), limit=10)) == ["mine"]
    dense = index.search(
        SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=_scope(point_ids=[mine.id]), limit=10
    )
    assert _texts(dense) == ["mine"]
    assert index.scroll(SPEC.name, filter=_scope(point_ids=[]), limit=10) == []
    assert index.count(SPEC.name, _scope(point_ids=[theirs.id])) == 0


def test_document_ids_filter(index: VectorIndex) -> None:
    index.upsert(SPEC.name, [_point("x", document_id="d1"), _point("y", document_id="d2"), _point("z")])
    assert sorted(_texts(index.scroll(SPEC.name, filter=_scope(document_ids=["d1", "d2"]), limit=10))) == [
        "x",
        "y",
    ]
    assert index.scroll(SPEC.name, filter=_scope(document_ids=[]), limit=10) == []
    assert index.count(SPEC.name, _scope(document_ids=[])) == 0


def test_soft_deleted_points_are_invisible_except_to_document_points(index: VectorIndex) -> None:
    keep, gone = _point("keep", document_id="d"), _point("gone", document_id="d")
    index.upsert(SPEC.name, [keep, gone])
    index.set_payload(SPEC.name, [gone.id], {"state": "deleted", "deleted_by_version": 2})
    hits = index.search(SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=_scope(), limit=10)
    assert _texts(hits) == ["keep"]
    assert _texts(index.scroll(SPEC.name, filter=_scope(), limit=10)) == ["keep"]
    assert index.count(SPEC.name, _scope()) == 1
    assert index.count(SPEC.name, _scope(include_deleted=True)) == 2
    points = {h.payload["text"]: h.payload for h in index.document_points(SPEC.name, "acme", "d")}
    assert points["gone"]["state"] == "deleted"
    assert points["gone"]["deleted_by_version"] == 2
    assert points["gone"]["metadata"] == {}  # set_payload merges, it does not replace
    index.delete_points(SPEC.name, [gone.id])
    assert _texts(index.document_points(SPEC.name, "acme", "d")) == ["keep"]


def test_vectorless_points_are_listed_but_never_searched(index: VectorIndex) -> None:
    tomb = _point("tomb", document_id="d", state="deleted")
    index.upsert(SPEC.name, [IndexPoint(id=tomb.id, dense=None, sparse=None, payload=tomb.payload)])
    assert (
        index.search(
            SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=_scope(include_deleted=True), limit=5
        )
        == []
    )
    assert _texts(index.document_points(SPEC.name, "acme", "d")) == ["tomb"]


def test_upsert_is_idempotent_by_id(index: VectorIndex) -> None:
    first = _point("p", metadata={"rev": 1})
    second = IndexPoint(
        id=first.id, dense=first.dense, sparse=first.sparse, payload={**first.payload, "metadata": {}}
    )
    index.upsert(SPEC.name, [first])
    index.upsert(SPEC.name, [second])
    index.upsert(SPEC.name, [second])
    [hit] = index.scroll(SPEC.name, filter=_scope(), limit=10, with_vectors=True)
    assert hit.payload["metadata"] == {}
    assert hit.id == first.id
    assert hit.dense is not None
    assert hit.dense == pytest.approx(first.dense, abs=1e-6)
    assert hit.sparse is not None
    assert hit.sparse.indices == [1]


def test_collections_and_aliases(index: VectorIndex) -> None:
    index.ensure_collection(SPEC)  # idempotent
    with pytest.raises(IndexConfigError):
        index.ensure_collection(CollectionSpec(name=SPEC.name, dense_dim=8))
    index.ensure_collection(CollectionSpec(name="chunks_v2", dense_dim=4))
    assert index.list_collections() == ["chunks_v1", "chunks_v2"]
    assert index.collection_exists("chunks_v2")
    assert not index.collection_exists("nope")
    index.upsert("chunks_v1", [_point("in-v1")])
    index.upsert("chunks_v2", [_point("in-v2")])

    assert index.resolve_alias("chunks") is None
    index.switch_alias("chunks", "chunks_v1")
    assert index.resolve_alias("chunks") == "chunks_v1"
    assert _texts(index.scroll("chunks", filter=_scope(), limit=5)) == ["in-v1"]
    index.switch_alias("chunks", "chunks_v2")
    assert index.resolve_alias("chunks") == "chunks_v2"
    assert _texts(index.search("chunks", using="dense", vector=[1.0, 0, 0, 0], filter=_scope(), limit=5)) == [
        "in-v2"
    ]
    with pytest.raises(CollectionNotFound):
        index.switch_alias("chunks", "missing")
    assert index.resolve_alias("chunks") == "chunks_v2"

    index.drop_collection("chunks_v2")
    assert index.resolve_alias("chunks") is None
    assert index.list_collections() == ["chunks_v1"]
    with pytest.raises(CollectionNotFound):
        index.scroll("chunks_v2", filter=_scope(), limit=5)


def test_index_event_through_the_service(opener: Opener) -> None:
    index = opener()
    index.ensure_collection(CollectionSpec(name="c", dense_dim=DIM))

    def run(event: ChunksEnriched) -> IndexOutcome:
        return index_event(event, index=index, collection="c", now=NOW)

    run(make_event(version=1, texts=["one two", "three four five"], acl=["g1"]))
    run(make_event(version=2, texts=["one two"], acl=["g1"]))
    assert run(make_event(version=1, texts=["stale"])).status == "stale"
    live = index.scroll("c", filter=IndexFilter(tenant="acme"), limit=10)
    assert [(h.payload["text"], h.payload["doc_version"]) for h in live] == [("one two", 2)]
    assert _texts(index.scroll("c", filter=IndexFilter(tenant="acme", acl_any=["g2"]), limit=10)) == []
    run(make_event(version=3, op=ChangeOp.DELETE))
    assert index.count("c", IndexFilter(tenant="acme")) == 0
    assert run(make_event(version=2, texts=["one two"])).status == "stale"
    index.close()


@pytest.mark.parametrize("engine", ["edge", "qdrant"])
def test_data_and_aliases_survive_close_and_reopen(engine: str, tmp_path: Path) -> None:
    open_index = _openers(tmp_path)[engine]
    first = open_index()
    first.ensure_collection(SPEC)
    first.upsert(SPEC.name, [_point("kept", metadata={"draft": True})])
    first.switch_alias("chunks", SPEC.name)
    first.close()

    second = open_index()
    assert second.list_collections() == [SPEC.name]
    assert second.resolve_alias("chunks") == SPEC.name
    second.ensure_collection(SPEC)
    scope = _scope(match=[MatchFilter(key="draft", value=True)])
    assert _texts(second.search("chunks", using="dense", vector=[1.0, 0, 0, 0], filter=scope, limit=5)) == [
        "kept"
    ]
    second.close()


def test_edge_serves_reads_while_another_thread_writes(tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path / "edge", flush_each_write=False)
    index.ensure_collection(SPEC)
    index.upsert(SPEC.name, [_point("seed")])
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for batch in range(20):
                index.upsert(SPEC.name, [_point(f"w{batch}-{i}", dense=[1, i, batch, 1]) for i in range(50)])
                index.upsert(SPEC.name, [_point(f"other{batch}", tenant="globex")])
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        hits = index.search(SPEC.name, using="dense", vector=[1.0, 0, 0, 0], filter=_scope(), limit=20)
        assert hits
        assert all(h.payload["tenant"] == "acme" for h in hits)
        reads += 1
    writer.join()
    assert errors == []
    assert index.count(SPEC.name, _scope()) == 1 + 20 * 50
    index.close()


_KILLED_WRITER = """
import os, signal, sys
from qdrant_client import QdrantClient
from schemas import SparseVector
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.adapters.qdrant import QdrantIndex
from services.indexer.ports import CollectionSpec, IndexPoint
engine, path = sys.argv[1], sys.argv[2]
index = EdgeIndex(path) if engine == "edge" else QdrantIndex(QdrantClient(path=path))
index.ensure_collection(CollectionSpec(name="c", dense_dim=4))
payload = {"tenant": "acme", "state": "live", "document_id": "d", "acl": [], "metadata": {}}
points = [
    IndexPoint(id=f"00000000-0000-0000-0000-{i:012d}", dense=[1.0, 0.0, 0.0, float(i)],
               sparse=SparseVector(indices=[1], values=[1.0]), payload=payload)
    for i in range(1, 201)
]
index.upsert("c", points)
index.set_payload("c", [points[0].id], {"state": "deleted"})
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("engine", ["edge", "qdrant"])
def test_acknowledged_writes_survive_a_killed_process(engine: str, tmp_path: Path, repo_root: Path) -> None:
    path = tmp_path / engine
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, engine, str(path)],
        cwd=repo_root,
        capture_output=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    index = _openers(tmp_path)[engine]()
    assert index.count("c", _scope()) == 199
    assert index.count("c", _scope(include_deleted=True)) == 200
    index.close()
