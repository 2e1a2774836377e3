"""Graph compaction on real Postgres: what no live document supports goes, the rest stays, idempotently,
and an entity a concurrent writer is adding support for is never removed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from services.graph_builder.adapters.postgres import PostgresGraphStore
from services.graph_builder.compaction import compact_graph
from services.graph_builder.domain import DocumentGraph, Entity, GraphCompaction, Relation, Support
from tests.postgres_support import session, wait_for_a_lock_wait

Rows = dict[str, set[tuple[Any, ...]]]


@pytest.fixture
def store(pg: psycopg.Connection[Any]) -> PostgresGraphStore:
    s = PostgresGraphStore(pg)
    s.ensure_schema()
    return s


def _graph(chunk: str, *names: str) -> DocumentGraph:
    """Entities `org:<name>` all mentioned in one chunk, each pair related."""
    ids = [f"org:{n}" for n in names]
    return DocumentGraph(
        entities=tuple(Entity(entity_id=e, label="org", name=e[4:].title()) for e in ids),
        support=tuple(Support(entity_id=e, chunk_id=chunk, mentions=1) for e in ids),
        relations=tuple(
            Relation(src=a, dst=b, relation="co_sentence", weight=1.0) for a in ids for b in ids if a < b
        ),
    )


def _rows(pg: psycopg.Connection[Any], tenant: str) -> Rows:
    tables = {
        "entities": "SELECT entity_id FROM graph_entities",
        "support": "SELECT document_id, entity_id, chunk_id FROM graph_support",
        "relations": "SELECT document_id, src, dst, relation FROM graph_relations",
    }
    return {
        name: {tuple(r) for r in pg.execute(sql + " WHERE tenant = %s", (tenant,)).fetchall()}
        for name, sql in tables.items()
    }


def _leave_debris(pg: psycopg.Connection[Any], tenant: str) -> None:
    """What the pipeline's own writes never leave, but a crash-era bug or a manual edit could."""
    pg.execute(
        "INSERT INTO graph_entities VALUES (%s, 'org:ghost', 'org', 'Ghost', 'ghost'),"
        " (%s, 'org:stray', 'org', 'Stray', 'stray')",
        (tenant, tenant),
    )
    # Support and relations of a deleted document, and of a document with no fence row at all.
    pg.execute(
        "INSERT INTO graph_support VALUES (%s, 'doc-gone', 'org:stray', 'g1', 2),"
        " (%s, 'doc-unknown', 'org:stray', 'u1', 1)",
        (tenant, tenant),
    )
    pg.execute(
        "INSERT INTO graph_relations VALUES (%s, 'doc-gone', 'org:acme', 'org:stray', 'co_chunk', 0.25),"
        # A live document's relation whose endpoint has no support in that document: its evidence is gone.
        " (%s, 'doc-1', 'org:acme', 'org:ghost', 'acquired', 1.0)",
        (tenant, tenant),
    )


def test_unsupported_entities_and_dangling_rows_go_supported_ones_stay(
    store: PostgresGraphStore, pg: psycopg.Connection[Any]
) -> None:
    for tenant in ("acme", "globex"):
        store.apply_document(
            tenant=tenant, document_id="doc-1", version=1, graph=_graph("c1", "acme", "beta")
        )
        store.apply_document(
            tenant=tenant, document_id="doc-2", version=1, graph=_graph("c2", "beta", "gamma")
        )
        store.apply_document(tenant=tenant, document_id="doc-gone", version=1, graph=_graph("g1", "delta"))
        assert store.remove_document(tenant=tenant, document_id="doc-gone", version=2)
    supported = {t: _rows(pg, t) for t in ("acme", "globex")}  # the recorded set that must survive
    assert supported["acme"]["entities"] == {("org:acme",), ("org:beta",), ("org:gamma",)}
    _leave_debris(pg, "acme")
    _leave_debris(pg, "globex")

    done = store.compact(tenant="acme")

    assert done == GraphCompaction(tenant="acme", support=2, relations=2, entities=2)
    assert _rows(pg, "acme") == supported["acme"]
    assert store.entity(tenant="globex", entity_id="org:ghost") is not None  # another tenant's: untouched
    assert store.document_version(tenant="acme", document_id="doc-gone") == 2  # the fence stays
    assert store.compact(tenant="acme") == GraphCompaction(tenant="acme", support=0, relations=0, entities=0)

    assert store.tenants() == ["acme", "globex"]
    assert [(g.tenant, g.entities) for g in compact_graph(store)] == [("acme", 0), ("globex", 2)]
    assert _rows(pg, "globex") == supported["globex"]
    assert all(g.support == g.relations == g.entities == 0 for g in compact_graph(store))


def test_an_entity_a_concurrent_writer_is_supporting_is_never_compacted(
    store: PostgresGraphStore, postgres_url: str, pg_schema: str, pg: psycopg.Connection[Any]
) -> None:
    # An orphan entity, committed without support: compaction would remove it...
    pg.execute("INSERT INTO graph_entities VALUES ('acme', 'org:acme', 'org', 'Acme', 'acme')")
    writer, compactor, observer = (session(postgres_url, pg_schema) for _ in range(3))
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        # ...but a writer is adding support for it in a transaction it has not committed yet.
        with writer.transaction():
            PostgresGraphStore(writer).apply_document(
                tenant="acme", document_id="d1", version=1, graph=_graph("d1-c1", "acme")
            )
            run = pool.submit(PostgresGraphStore(compactor).compact, tenant="acme")
            wait_for_a_lock_wait(observer, run)
            assert not run.done(), "compaction must wait for the writer's entity lock"
        assert run.result(timeout=10).entities == 0
    finally:
        writer.close()  # also ends the writer's transaction if an assertion left it open
        pool.shutdown(wait=True)
        compactor.close()
        observer.close()

    assert store.entity(tenant="acme", entity_id="org:acme") is not None
    assert _rows(pg, "acme")["support"] == {("d1", "org:acme", "d1-c1")}


def test_a_writer_waits_for_a_running_compaction_and_then_applies_in_full(
    store: PostgresGraphStore, postgres_url: str, pg_schema: str, pg: psycopg.Connection[Any]
) -> None:
    store.apply_document(tenant="acme", document_id="d1", version=1, graph=_graph("c1", "acme"))
    _leave_debris(pg, "acme")
    compactor, writer, observer = (session(postgres_url, pg_schema) for _ in range(3))
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with compactor.transaction():  # compaction holds the tenant's locks, not yet committed
            PostgresGraphStore(compactor).compact(tenant="acme")
            write = pool.submit(
                PostgresGraphStore(writer).apply_document,
                tenant="acme",
                document_id="d2",
                version=1,
                graph=_graph("d2-c1", "ghost", "acme"),  # re-adds the entity compaction is removing
            )
            wait_for_a_lock_wait(observer, write)
            assert not write.done(), "the writer must wait for compaction's locks"
        assert write.result(timeout=10)
    finally:
        compactor.close()
        pool.shutdown(wait=True)
        writer.close()
        observer.close()

    assert store.entity(tenant="acme", entity_id="org:ghost") is not None
    assert ("d2", "org:ghost", "d2-c1") in _rows(pg, "acme")["support"]
    assert store.compact(tenant="acme") == GraphCompaction(tenant="acme", support=0, relations=0, entities=0)
