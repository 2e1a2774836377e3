"""Model-based test of the indexer (row 33 of the test plan): random creates, updates, deletes, primary-key
changes, duplicates, out-of-order deliveries, full replays, crashes between a write's two halves and
compactions, against a dict of each document's newest version. After every step the index's live chunks
equal the model's, with no chunk twice. On Qdrant-edge the machine also closes and reopens the index (a
process restart).

Examples scale with the Hypothesis profile (tests/conftest.py): ci 50 in memory and 10 on edge runs of up
to 25 steps; `HYPOTHESIS_PROFILE=thorough` 1,000 and 100.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from schemas import ChangeOp, ChunksEnriched
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.compaction import compact
from services.indexer.logic import plan_write
from services.indexer.ports import CollectionSpec, IndexFilter, VectorIndex
from services.indexer.service import index_event
from tests.builders import DIM, NOW, make_event

COLLECTION = "chunks"
TENANTS = ("acme", "globex")
DOC_IDS = ("a", "b", "c")  # the same ids in both tenants
WORDS = ("alpha", "beta", "gamma", "delta", "eps", "zeta")
PROFILE_EXAMPLES = settings().max_examples
pytestmark = pytest.mark.timeout(0 if PROFILE_EXAMPLES > 1000 else 600)

keys = st.tuples(st.sampled_from(TENANTS), st.sampled_from(DOC_IDS))
bodies = st.lists(st.sampled_from(WORDS), max_size=4, unique=True)  # chunk texts; empty shows nothing
acls = st.lists(st.sampled_from(["eng", "hr"]), max_size=2, unique=True)

Key = tuple[str, str]
Row = tuple[str, str, str, int, str, tuple[str, ...]]  # tenant, document, chunk, version, text, acl


class IndexerMachine(RuleBasedStateMachine):
    """The source of truth (each document's next version), what was delivered, and the index."""

    def __init__(self) -> None:
        super().__init__()
        self.index = self.open_index()
        self.index.ensure_collection(CollectionSpec(name=COLLECTION, dense_dim=DIM))
        self.source: dict[Key, int] = {}  # the last version the source produced per document
        self.newest: dict[Key, ChunksEnriched] = {}  # the model: the newest version delivered
        self.log: list[ChunksEnriched] = []  # every event delivered, in order (a topic before compaction)

    def open_index(self) -> VectorIndex:
        return InMemoryIndex()

    # -- the source produces changes -------------------------------------------------------------

    def _next(self, key: Key, *, bump: int = 1) -> int:
        self.source[key] = self.source.get(key, 0) + bump
        return self.source[key]

    def _upsert(self, key: Key, version: int, texts: list[str], acl: list[str]) -> ChunksEnriched:
        return make_event(version=version, texts=texts, tenant=key[0], document_id=key[1], acl=acl)

    def _delete(self, key: Key, version: int) -> ChunksEnriched:
        return make_event(version=version, op=ChangeOp.DELETE, tenant=key[0], document_id=key[1])

    def deliver(self, event: ChunksEnriched, *, again: bool = False) -> None:
        index_event(event, index=self.index, collection=COLLECTION, now=NOW)
        key = (event.tenant, event.document_id)
        current = self.newest.get(key)
        # Deletes win ties, so the outcome never depends on the order of equal versions.
        if (
            current is None
            or event.version > current.version
            or (event.version == current.version and event.op is ChangeOp.DELETE)
        ):
            self.newest[key] = event
        if not again:
            self.log.append(event)

    # -- rules ---------------------------------------------------------------------------------------

    @rule(key=keys, texts=bodies, acl=acls, bump=st.integers(1, 3))
    def create_or_update(self, key: Key, texts: list[str], acl: list[str], bump: int) -> None:
        self.deliver(self._upsert(key, self._next(key, bump=bump), texts, acl))

    @rule(key=keys)
    def delete(self, key: Key) -> None:
        self.deliver(self._delete(key, self._next(key)))

    @precondition(lambda self: self.source)
    @rule(data=st.data())
    def delete_at_the_same_version(self, data: st.DataObject) -> None:
        """A delete carrying the version of the last upsert (e.g. one LSN): the delete wins."""
        key = data.draw(st.sampled_from(sorted(self.source)))
        self.deliver(self._delete(key, self.source[key]))

    @rule(old=keys, new_id=st.sampled_from(DOC_IDS))
    def change_primary_key(self, old: Key, new_id: str) -> None:
        """A source row's id changes: the document is deleted, its content created under the new id."""
        new = (old[0], new_id)
        if new == old:
            return
        before = self.newest.get(old)
        texts = [c.text for c in before.chunks] if before else ["moved"]
        self.deliver(self._delete(old, self._next(old)))
        self.deliver(self._upsert(new, self._next(new), texts, list(before.acl) if before else []))

    @precondition(lambda self: self.log)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """At-least-once delivery: any event already seen comes again (a duplicate, or an old one)."""
        self.deliver(data.draw(st.sampled_from(self.log)), again=True)

    @rule(key=keys, first=bodies, second=bodies)
    def two_versions_out_of_order(self, key: Key, first: list[str], second: list[str]) -> None:
        older = self._upsert(key, self._next(key), first, [])
        newer = self._upsert(key, self._next(key), second, [])
        self.deliver(newer)
        self.deliver(older)

    @precondition(lambda self: self.log)
    @rule()
    def replay_everything(self) -> None:
        """An operator replays the topic from offset 0."""
        for event in self.log:
            self.deliver(event, again=True)

    @rule(key=keys, texts=bodies)
    def crash_between_upserts_and_soft_deletes(self, key: Key, texts: list[str]) -> None:
        """The process dies after writing new chunks, before soft-deleting old ones; redelivery finishes."""
        event = self._upsert(key, self._next(key), texts, [])
        plan = plan_write(event, self.index.document_points(COLLECTION, *key), NOW)
        self.index.upsert(COLLECTION, plan.upserts)
        self.deliver(event)

    @rule()
    def compact_everything_soft_deleted(self) -> None:
        """Compaction with no retention: every soft-deleted chunk goes, tombstones stay, and replays that
        follow must still be fenced by what is left."""
        compact(index=self.index, collection=COLLECTION, retention=timedelta(0), now=NOW + timedelta(1))

    # -- the invariant ---------------------------------------------------------------------------

    @invariant()
    def live_chunks_equal_the_model(self) -> None:
        expected = sorted(
            (e.tenant, e.document_id, c.chunk_id, e.version, c.text, tuple(e.acl))
            for e in self.newest.values()
            if e.op is ChangeOp.UPSERT
            for c in e.chunks
        )
        found: list[Row] = []
        for tenant in TENANTS:
            for hit in self.index.scroll(COLLECTION, filter=IndexFilter(tenant=tenant), limit=10_000):
                p = hit.payload
                found.append(
                    (
                        p["tenant"],
                        p["document_id"],
                        p["chunk_id"],
                        p["doc_version"],
                        p["text"],
                        tuple(p["acl"]),
                    )
                )
        assert sorted(found) == expected  # a list: a chunk live twice fails too


class EdgeIndexerMachine(IndexerMachine):
    """The same machine on Qdrant-edge on disk, where the process may also restart between steps."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="indexer-machine-"))
        super().__init__()

    def open_index(self) -> VectorIndex:
        return EdgeIndex(self.root)

    @rule()
    def restart(self) -> None:
        self.index.close()
        self.index = self.open_index()

    def teardown(self) -> None:
        self.index.close()
        shutil.rmtree(self.root, ignore_errors=True)


TestIndexerInMemory = IndexerMachine.TestCase
TestIndexerInMemory.settings = settings(
    max_examples=max(50, PROFILE_EXAMPLES // 10), stateful_step_count=25, deadline=None
)
TestIndexerOnQdrantEdge = EdgeIndexerMachine.TestCase
TestIndexerOnQdrantEdge.settings = settings(
    max_examples=max(10, PROFILE_EXAMPLES // 100), stateful_step_count=25, deadline=None
)
