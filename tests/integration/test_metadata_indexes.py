"""Payload indexes on metadata keys: every filter the API offers returns the same points with the index as
without it, on each engine; only the speed changes (`headwater bench query` measures that)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from schemas import DateRangeFilter, MatchFilter, RangeFilter, SparseVector
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.adapters.qdrant import QdrantIndex
from services.indexer.errors import IndexConfigError
from services.indexer.ports import CollectionSpec, IndexFilter, IndexPoint, MetadataIndexKind, VectorIndex

COLLECTION = "chunks_v1"
KINDS: dict[str, MetadataIndexKind] = {
    "year": "integer",
    "journal": "keyword",
    "reviewed": "bool",
    "score": "float",
    "published": "datetime",
}
FILTERS = [
    IndexFilter(tenant="acme", match=[MatchFilter(key="year", value=2003)]),
    IndexFilter(tenant="acme", match=[MatchFilter(key="year", any=[2001, 2004])]),
    IndexFilter(tenant="acme", range=[RangeFilter(key="year", gte=2002, lt=2005)]),
    IndexFilter(tenant="acme", match=[MatchFilter(key="journal", value="Cell")]),
    IndexFilter(tenant="acme", match=[MatchFilter(key="journal", any=["Cell", "BMJ"])]),
    IndexFilter(tenant="acme", match=[MatchFilter(key="reviewed", value=True)]),
    IndexFilter(tenant="acme", match=[MatchFilter(key="reviewed", value=False)]),
    IndexFilter(tenant="acme", range=[RangeFilter(key="score", gt=0.25, lte=0.75)]),
    IndexFilter(tenant="acme", match=[MatchFilter(key="score", value=0.5)]),
    IndexFilter(
        tenant="acme",
        date_range=[DateRangeFilter(key="published", gte=datetime(2024, 3, 1, tzinfo=UTC))],
    ),
    IndexFilter(tenant="acme", match=[MatchFilter(key="journal", value=None)]),  # the key is absent
    IndexFilter(
        tenant="acme",
        acl_any=["eng"],
        match=[MatchFilter(key="journal", value="Cell"), MatchFilter(key="reviewed", value=True)],
        range=[RangeFilter(key="year", gte=2001)],
    ),
]


def _points() -> list[IndexPoint]:
    points = []
    for n in range(40):
        angle = n / 40 * math.pi
        metadata: dict[str, object] = {
            "year": 2000 + n % 6,
            "reviewed": n % 3 == 0,
            "score": (n % 5) / 4,
            "published": f"2024-{n % 12 + 1:02d}-15T12:00:00Z",
        }
        if n % 7:
            metadata["journal"] = ["Cell", "BMJ", "Lancet"][n % 3]
        payload = {
            "tenant": "acme" if n % 4 else "globex",
            "document_id": f"doc-{n}",
            "doc_version": 1,
            "chunk_id": f"c{n}",
            "text": f"chunk {n}",
            "acl": [] if n % 2 else ["eng"],
            "metadata": metadata,
            "entity_ids": [],
            "state": "live",
        }
        points.append(
            IndexPoint(
                id=str(uuid.UUID(int=n + 1)),
                dense=[math.cos(angle), math.sin(angle), 0.1, 0.0],
                sparse=SparseVector(indices=[1], values=[1.0]),
                payload=payload,
            )
        )
    return points


@pytest.fixture(params=["edge", "qdrant", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    openers: dict[str, Callable[[], VectorIndex]] = {
        "edge": lambda: EdgeIndex(tmp_path / "edge"),
        "qdrant": lambda: QdrantIndex(QdrantClient(path=str(tmp_path / "qdrant"))),
        "memory": InMemoryIndex,
    }
    opened = openers[request.param]()
    opened.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=4))
    opened.upsert(COLLECTION, _points())
    yield opened
    opened.close()


def _found(index: VectorIndex) -> list[set[str]]:
    found = []
    for scope in FILTERS:
        hits = index.search(COLLECTION, using="dense", vector=[1.0, 0.0, 0.0, 0.0], filter=scope, limit=100)
        found.append({h.id for h in hits})
    return found


def test_filters_return_the_same_points_with_metadata_indexes_as_without(index: VectorIndex) -> None:
    before = _found(index)
    assert all(before), "every filter should match some points, or the comparison proves little"
    for key, kind in KINDS.items():
        index.index_metadata(COLLECTION, key, kind)
    assert _found(index) == before
    for key, kind in KINDS.items():  # again: a no-op
        index.index_metadata(COLLECTION, key, kind)
    assert _found(index) == before


def test_the_edge_engine_holds_the_indexes_across_a_restart(tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path)
    index.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=4))
    index.upsert(COLLECTION, _points())
    for key, kind in KINDS.items():
        index.index_metadata(COLLECTION, key, kind)
    index.close()
    reopened = EdgeIndex(tmp_path)
    schema = reopened._shard(COLLECTION).info().payload_schema
    assert {"metadata.year", "metadata.journal", "_metadata_bool.reviewed", "metadata.score"} <= set(schema)
    assert "metadata.published" in schema
    reopened.close()


@pytest.mark.parametrize("key", ["a.", "a..b", ".a", "x" * 65, "with space"])
def test_a_key_that_is_no_payload_path_is_refused(index: VectorIndex, key: str) -> None:
    with pytest.raises(IndexConfigError):
        index.index_metadata(COLLECTION, key, "keyword")
