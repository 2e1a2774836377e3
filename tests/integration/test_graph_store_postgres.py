"""The store contract on real Postgres, plus what only a database can show: transactions and concurrency."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from services.graph_builder.adapters.postgres import PostgresGraphStore
from services.graph_builder.domain import DocumentGraph, Entity, Support
from services.graph_builder.errors import GraphStoreError
from services.graph_builder.ports import GraphStore
from tests.postgres_support import session, wait_for_a_lock_wait
from tests.unit.graph_builder.store_contract import SCENARIOS


@pytest.fixture
def store(pg: psycopg.Connection[Any]) -> PostgresGraphStore:
    s = PostgresGraphStore(pg)
    s.ensure_schema()
    return s


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_postgres_store(scenario: Callable[[GraphStore], None], store: PostgresGraphStore) -> None:
    scenario(store)


def test_a_failed_apply_changes_nothing(store: PostgresGraphStore) -> None:
    good = DocumentGraph(
        entities=(Entity(entity_id="org:acme", label="org", name="Acme"),),
        support=(Support(entity_id="org:acme", chunk_id="c1", mentions=1),),
    )
    assert store.apply_document(tenant="acme", document_id="d1", version=1, graph=good)
    broken = DocumentGraph(
        entities=(Entity(entity_id="org:beta", label="org", name="Beta"),),
        support=(
            Support(entity_id="org:beta", chunk_id="c2", mentions=0),
        ),  # violates the CHECK, after the deletes
    )

    with pytest.raises(GraphStoreError):
        store.apply_document(tenant="acme", document_id="d1", version=2, graph=broken)

    assert store.document_version(tenant="acme", document_id="d1") == 1
    assert [
        c.chunk_id for c in store.chunks_for_entities(tenant="acme", entity_ids=["org:acme"], limit=5)
    ] == ["c1"]
    assert store.entity(tenant="acme", entity_id="org:beta") is None


def test_ensure_schema_is_idempotent_and_prune_sweeps_orphans(store: PostgresGraphStore, pg: Any) -> None:
    store.ensure_schema()
    pg.execute("INSERT INTO graph_entities VALUES ('acme', 'org:ghost', 'org', 'Ghost', 'ghost')")
    pg.execute("INSERT INTO graph_entities VALUES ('other', 'org:ghost', 'org', 'Ghost', 'ghost')")

    assert store.prune_orphans(tenant="acme") == 1
    assert store.entity(tenant="other", entity_id="org:ghost") is not None


def test_a_concurrent_writer_adding_support_is_never_pruned(
    store: PostgresGraphStore, postgres_url: str, pg_schema: str
) -> None:
    only_acme = DocumentGraph(
        entities=(Entity(entity_id="org:acme", label="org", name="Acme"),),
        support=(Support(entity_id="org:acme", chunk_id="d1-c1", mentions=1),),
    )
    also_acme = DocumentGraph(
        entities=only_acme.entities, support=(Support(entity_id="org:acme", chunk_id="d2-c1", mentions=1),)
    )
    store.apply_document(tenant="acme", document_id="d1", version=1, graph=only_acme)
    writer, observer = session(postgres_url, pg_schema), session(postgres_url, pg_schema)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        # Writer adds support for Acme inside a transaction it has not committed yet...
        with writer.transaction():
            PostgresGraphStore(writer).apply_document(
                tenant="acme", document_id="d2", version=1, graph=also_acme
            )
            # ...while another writer deletes the document that held Acme's only committed support.
            removal = pool.submit(store.remove_document, tenant="acme", document_id="d1", version=2)
            wait_for_a_lock_wait(observer, removal)
            assert not removal.done(), "the remover must wait for the writer's entity lock"
        assert removal.result(timeout=10)
    finally:
        writer.close()  # also ends the writer's transaction if an assertion left it open
        pool.shutdown(wait=True)
        observer.close()

    assert [
        c.chunk_id for c in store.chunks_for_entities(tenant="acme", entity_ids=["org:acme"], limit=5)
    ] == ["d2-c1"]
    assert store.entity(tenant="acme", entity_id="org:acme") is not None


def test_empty_inputs_read_nothing(store: PostgresGraphStore) -> None:
    assert store.apply_document(tenant="acme", document_id="d1", version=1, graph=DocumentGraph())
    assert store.entities(tenant="acme", entity_ids=[]) == []
    assert store.find_entities(tenant="acme", names_or_ids=["", "!!"]) == []
    assert store.chunks_for_entities(tenant="acme", entity_ids=[], limit=5) == []
    assert store.edges_around(tenant="acme", entity_ids=[], limit=5) == []
