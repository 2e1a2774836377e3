"""MigrationStore against a real Postgres, one schema per test: the collection registry, one active
migration per alias whichever process races, transitions and their evidence, backfill progress; and the
operator's `headwater migrate` functions on top of it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from headwater.kernel.postgres import connect
from headwater.operations import migrate
from services.embedder.adapters.fake import HashingBackend
from services.embedder.profiles import BUILTIN_PROFILES, ModelProfile
from services.indexer.errors import MigrationError
from services.indexer.migration.plan import IndexCollection, MigrationState
from services.indexer.migration.store import MigrationStore

ALIAS = "chunks"
A = IndexCollection(name="chunks__a__d64__v1", alias=ALIAS, model_id="a", dimension=64, profile=None)
B = IndexCollection(
    name="chunks__b__d32__v1", alias=ALIAS, model_id="b", dimension=32, profile={"name": "b", "x": [1]}
)
C = IndexCollection(name="chunks__c__d16__v1", alias=ALIAS, model_id="c", dimension=16, profile=None)


@pytest.fixture
def stores(postgres_url: str) -> Iterator[Callable[[], MigrationStore]]:
    """A factory of stores sharing one fresh schema (each its own connection, as separate processes)."""
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    opened: list[MigrationStore] = []

    def open_store() -> MigrationStore:
        store = MigrationStore(lambda: connect(postgres_url, schema=schema))
        store.ensure_schema()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    with connect(postgres_url) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def store(stores: Callable[[], MigrationStore]) -> MigrationStore:
    return stores()


def _race(n: int, action: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run `action(i)` in n threads released together; what they returned and what they raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            found = action(i)
        except BaseException as exc:  # collected for the assertions
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(found)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results, errors


# -- the collection registry -----------------------------------------------------------------------


def test_register_is_first_writer_wins(store: MigrationStore) -> None:
    assert store.collection(A.name) is None
    assert store.register(A) == A
    other_model = IndexCollection(name=A.name, alias="x", model_id="zzz", dimension=8, profile={"n": 1})
    assert store.register(other_model) == A
    assert store.register(B) == B  # the profile round-trips through jsonb
    assert store.collection(A.name) == A


def test_live_collections_is_live_and_retire(store: MigrationStore) -> None:
    other_alias = IndexCollection(
        name="docs__a__d64__v1", alias="docs", model_id="a", dimension=64, profile=None
    )
    for c in (A, B, other_alias):
        store.register(c)
    assert store.live_collections(ALIAS) == [A, B]  # in the order they were created
    assert store.is_live(A.name) and store.is_live(B.name)
    assert not store.is_live("never-registered")

    store.retire(A.name)
    store.retire(A.name)  # idempotent
    assert not store.is_live(A.name)
    assert store.live_collections(ALIAS) == [B]
    assert store.collection(A.name) == A  # retired, still known
    assert store.live_collections("docs") == [other_alias]


def test_retire_keeps_the_first_time(store: MigrationStore) -> None:
    store.register(A)
    store.retire(A.name)
    first = store._run("SELECT retired_at FROM index_collections WHERE name = %s", (A.name,))
    store.retire(A.name)
    assert store._run("SELECT retired_at FROM index_collections WHERE name = %s", (A.name,)) == first


def test_record_profile_fills_only_a_missing_profile(store: MigrationStore) -> None:
    store.register(A)
    store.register(B)
    store.record_profile(A.name, {"name": "a", "backend": "hashing"})
    store.record_profile(B.name, {"name": "overwritten?"})
    store.record_profile(A.name, {"name": "second"})
    found_a, found_b = store.collection(A.name), store.collection(B.name)
    assert found_a is not None and found_a.profile == {"name": "a", "backend": "hashing"}
    assert found_b is not None and found_b.profile == B.profile


# -- migrations ------------------------------------------------------------------------------------


def test_start_records_a_backfilling_migration(store: MigrationStore) -> None:
    migration = store.start(alias=ALIAS, source=A, target=B)
    assert migration.state is MigrationState.BACKFILLING
    assert (migration.source, migration.target, migration.alias) == (A, B, ALIAS)
    assert migration.applied_state is None and not migration.backfill_complete
    assert (migration.reembedded_points, migration.embedded_texts, migration.scanned_points) == (0, 0, 0)
    assert migration.total_points is None and migration.decisions == []
    assert store.get(migration.id) == migration
    assert store.current(ALIAS) == migration
    assert store.get(migration.id + 1000) is None
    assert store.current("other") is None
    assert store.collection(B.name) == B  # start registers both sides


def test_a_second_active_migration_of_an_alias_is_refused(store: MigrationStore) -> None:
    first = store.start(alias=ALIAS, source=A, target=B)
    with pytest.raises(MigrationError, match="already has an active migration"):
        store.start(alias=ALIAS, source=A, target=C)
    assert [m.id for m in store.history(ALIAS)] == [first.id]
    # Another alias is independent, and once the first is over a new one may start.
    other = IndexCollection(name="docs__a__d64__v1", alias="docs", model_id="a", dimension=64, profile=None)
    store.start(alias="docs", source=other, target=C)
    store.transition(first.id, "abort", record={"command": "abort"})
    second = store.start(alias=ALIAS, source=A, target=C)
    assert store.current(ALIAS) == second
    assert [m.id for m in store.history(ALIAS)] == [first.id, second.id]


def test_racing_starts_leave_exactly_one_migration(stores: Callable[[], MigrationStore]) -> None:
    racers = [stores() for _ in range(4)]
    targets = [
        IndexCollection(
            name=f"chunks__t{i}__d8__v1", alias=ALIAS, model_id=f"t{i}", dimension=8, profile=None
        )
        for i in range(4)
    ]
    started, errors = _race(4, lambda i: racers[i].start(alias=ALIAS, source=A, target=targets[i]))
    assert len(started) == 1
    assert len(errors) == 3 and all(isinstance(e, MigrationError) for e in errors), errors
    assert [m.id for m in racers[0].history(ALIAS)] == [started[0].id]


def test_transitions_persist_and_refused_ones_change_nothing(stores: Callable[[], MigrationStore]) -> None:
    store = stores()
    migration = store.start(alias=ALIAS, source=A, target=B)
    moved = store.transition(migration.id, "cutover", record={"command": "cutover", "n": 1})
    assert moved.state is MigrationState.CUT_OVER
    assert moved.read_collection == B
    assert moved.updated_at >= migration.updated_at

    reopened = stores().get(migration.id)  # another process sees it
    assert reopened is not None and reopened.state is MigrationState.CUT_OVER
    assert reopened.decisions == [{"command": "cutover", "n": 1}]

    for refused in ("cutover", "abort"):
        with pytest.raises(MigrationError, match=f"cannot {refused} a migration that is cut_over"):
            store.transition(migration.id, refused, record={"command": refused})
    after = store.get(migration.id)
    assert after is not None
    assert after.state is MigrationState.CUT_OVER and after.decisions == reopened.decisions

    with pytest.raises(MigrationError, match="no migration"):
        store.transition(migration.id + 1000, "cutover", record={})


def test_racing_transitions_apply_once(stores: Callable[[], MigrationStore]) -> None:
    migration = stores().start(alias=ALIAS, source=A, target=B)
    racers = [stores() for _ in range(3)]
    done, errors = _race(
        3, lambda i: racers[i].transition(migration.id, "cutover", record={"command": "cutover", "by": i})
    )
    assert len(done) == 1 and len(errors) == 2
    assert all(isinstance(e, MigrationError) for e in errors), errors
    final = racers[0].get(migration.id)
    assert final is not None and len(final.decisions) == 1


def test_decisions_accumulate_in_order(store: MigrationStore) -> None:
    migration = store.start(alias=ALIAS, source=A, target=B)
    store.record_decision(migration.id, {"command": "cutover", "allowed": False})
    store.transition(migration.id, "cutover", record={"command": "cutover", "allowed": True})
    store.transition(migration.id, "rollback", record={"command": "rollback"})
    store.record_decision(migration.id, {"command": "cutover", "allowed": False, "again": True})
    store.transition(migration.id, "cutover", record={"command": "cutover", "allowed": True})
    final = store.transition(migration.id, "finish", record={"command": "finish"})
    assert final.state is MigrationState.FINISHED
    assert final.decisions == [
        {"command": "cutover", "allowed": False},
        {"command": "cutover", "allowed": True},
        {"command": "rollback"},
        {"command": "cutover", "allowed": False, "again": True},
        {"command": "cutover", "allowed": True},
        {"command": "finish"},
    ]
    assert store.current(ALIAS) == final  # no active one: the latest


def test_the_active_migration_is_current_over_a_later_finished_one(store: MigrationStore) -> None:
    first = store.start(alias=ALIAS, source=A, target=B)
    store.transition(first.id, "abort", record={})
    second = store.start(alias=ALIAS, source=A, target=C)
    assert store.current(ALIAS) == second
    assert store.get(first.id) is not None
    assert store.history(ALIAS)[0].state is MigrationState.ABORTED


def test_progress_and_the_scan_cursor_round_trip(stores: Callable[[], MigrationStore]) -> None:
    store = stores()
    migration = store.start(alias=ALIAS, source=A, target=B)
    assert store.scan_cursor(migration.id) == (None, False)
    assert store.scan_cursor(migration.id + 1000) == (None, False)

    store.add_progress(migration.id, points=5, texts=3)
    store.add_progress(migration.id, points=0, texts=0)
    store.add_progress(migration.id, points=2, texts=0)
    store.save_scan(migration.id, cursor="id-0100", complete=False, scanned=100, total=250)
    store.save_scan(migration.id, cursor="id-0200", complete=False, scanned=100, total=260)
    assert store.scan_cursor(migration.id) == ("id-0200", False)

    found = stores().get(migration.id)
    assert found is not None
    assert (found.reembedded_points, found.embedded_texts) == (7, 3)
    assert (found.scanned_points, found.total_points, found.backfill_complete) == (200, 260, False)

    store.save_scan(migration.id, cursor=None, complete=True, scanned=60, total=260)
    assert store.scan_cursor(migration.id) == (None, True)
    done = store.get(migration.id)
    assert done is not None and done.backfill_complete and done.scanned_points == 260
    assert migrate.backfill_lag(done, kafka_lag=None) == 0


def test_mark_applied(store: MigrationStore) -> None:
    migration = store.start(alias=ALIAS, source=A, target=B)
    store.mark_applied(migration.id, MigrationState.BACKFILLING)
    found = store.get(migration.id)
    assert found is not None and found.applied_state is MigrationState.BACKFILLING
    assert migrate.wait_applied(store, found, timeout_s=5).applied_state is MigrationState.BACKFILLING


def test_the_store_reconnects_after_its_connection_is_killed(postgres_url: str) -> None:
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    opened: list[psycopg.Connection[Any]] = []

    def connect_and_keep() -> psycopg.Connection[Any]:
        conn = connect(postgres_url, schema=schema)
        opened.append(conn)
        return conn

    store = MigrationStore(connect_and_keep)
    try:
        store.ensure_schema()
        store.register(A)
        with connect(postgres_url) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (opened[-1].info.backend_pid,))
        assert store.collection(A.name) == A
        assert len(opened) == 2
    finally:
        store.close()
        with connect(postgres_url) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- `headwater migrate` on the store --------------------------------------------------------------


def _profile(name: str) -> ModelProfile:
    return ModelProfile(name=name, backend="hashing")


def test_migrate_start_needs_exactly_one_live_collection(store: MigrationStore) -> None:
    backend = HashingBackend(dimension=32, model_id="b")
    with pytest.raises(MigrationError, match="0 live collections"):
        migrate.start(store, alias=ALIAS, profile=_profile("b"), backend=backend)
    store.register(A)
    store.register(C)
    with pytest.raises(MigrationError, match="2 live collections"):
        migrate.start(store, alias=ALIAS, profile=_profile("b"), backend=backend)


def test_migrate_start_records_the_source_profile_and_names_the_target(store: MigrationStore) -> None:
    store.register(A)
    backend = HashingBackend(dimension=32, model_id="hash/B 32")
    configured = (BUILTIN_PROFILES["hashing"], "a")
    migration = migrate.start(
        store, alias=ALIAS, profile=_profile("b"), backend=backend, configured=configured
    )
    assert migration.source.name == A.name
    assert migration.source.profile == BUILTIN_PROFILES["hashing"].model_dump()
    assert migration.target.name == "chunks__hash-b-32__d32__v1"
    assert (migration.target.model_id, migration.target.dimension) == ("hash/B 32", 32)
    assert migration.target.profile == _profile("b").model_dump()
    with pytest.raises(MigrationError, match="finish or abort it first"):
        migrate.start(store, alias=ALIAS, profile=_profile("b"), backend=backend)


def test_migrate_start_leaves_a_profile_of_another_model_unrecorded(store: MigrationStore) -> None:
    store.register(A)
    migrate.start(
        store,
        alias=ALIAS,
        profile=_profile("b"),
        backend=HashingBackend(dimension=32, model_id="b"),
        configured=(BUILTIN_PROFILES["hashing"], "not-a"),
    )
    found = store.collection(A.name)
    assert found is not None and found.profile is None


def test_migrate_start_refuses_the_model_the_source_holds(store: MigrationStore) -> None:
    store.register(A)
    with pytest.raises(MigrationError, match="already holds a"):
        migrate.start(store, alias=ALIAS, profile=_profile("a"), backend=HashingBackend(model_id="a"))


def test_a_model_used_before_gets_a_fresh_collection(store: MigrationStore) -> None:
    store.register(A)
    to_b = migrate.start(store, alias=ALIAS, profile=_profile("b"), backend=HashingBackend(model_id="b"))
    for command in ("cutover", "finish"):
        store.transition(to_b.id, command, record={})
    store.retire(A.name)
    back_to_a = migrate.start(
        store, alias=ALIAS, profile=_profile("a"), backend=HashingBackend(dimension=64, model_id="a")
    )
    assert back_to_a.source.name == to_b.target.name
    assert back_to_a.target.name == "chunks__a__d64__v2"  # never the retired v1


def test_migrate_cutover_records_a_refusal_and_moves_when_allowed(store: MigrationStore) -> None:
    store.register(A)
    migration = migrate.start(store, alias=ALIAS, profile=_profile("b"), backend=HashingBackend(model_id="b"))
    worse = migrate.SideBySide(
        queries=3, source_score=0.8, target_score=0.5, better=0, worse=2, overlap=0.5, mode="hybrid"
    )
    decision, unchanged = migrate.cutover(store, migration, lag=0, scores=worse, force=False)
    assert not decision.allowed and unchanged.state is MigrationState.BACKFILLING
    stored = store.get(migration.id)
    assert stored is not None and stored.state is MigrationState.BACKFILLING
    assert len(stored.decisions) == 1
    assert stored.decisions[0]["allowed"] is False
    assert stored.decisions[0]["comparison"]["source"] == 0.8

    decision, moved = migrate.cutover(store, migration, lag=0, scores=worse, force=True)
    assert decision.allowed and decision.forced
    assert moved.state is MigrationState.CUT_OVER
    assert [d["forced"] for d in moved.decisions] == [False, True]

    rolled = migrate.command(store, moved, "rollback", note="users complained")
    assert rolled.state is MigrationState.ROLLED_BACK
    assert rolled.decisions[-1]["note"] == "users complained"
