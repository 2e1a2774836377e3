"""CDC: Debezium change records become document change events; row state makes deletes, tombstones,
primary-key changes, identity moves and truncates resolvable, and redelivery repeatable.

Envelopes are shaped like the ones Debezium 3.6's Postgres connector writes through the JsonConverter
(schemas disabled), as captured from a real connector in tests/integration/test_cdc_connect.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord  # type: ignore[import-untyped]

from headwater.runtime.distributed import codec
from headwater.runtime.distributed.cdc import decode
from schemas import BlockKind, ChangeOp, DocumentChanged, SourceKind, VersionKind
from schemas.sources import CdcMappings, TableMapping
from services.ingest.cdc import CdcIngest, InMemoryRowTracker, RowChange, Tombstone, Truncate, decode_record
from services.ingest.cdc.config import load_mappings
from services.ingest.cdc.logic import delete_version, upsert_version
from services.ingest.errors import (
    CdcError,
    MalformedChangeEvent,
    RowNotMappable,
    UnavailableValue,
    UnmappedTable,
)

TOPIC = "cdc.public.articles"
PLACEHOLDER = "__debezium_unavailable_value"
COMMIT_MS = 1_795_765_868_914

MAPPINGS = CdcMappings(
    topic_prefix="cdc",
    tables=[
        TableMapping(
            table="public.articles",
            document_id="article-{id}",
            tenant_column="tenant",
            title="{title}",
            text="{title}\n\n{body}",
            content_type="text/markdown",
            metadata={"author": "author", "tags": "tags"},
            acl_column="groups",
            acl=["staff"],
        ),
        TableMapping(table="public.notes", document_id="{slug}", tenant="acme", text=["body"]),
    ],
)


def _row(
    id: int, *, tenant: str = "acme", title: str = "Refunds", body: str = "Within 30 days.", **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "tenant": tenant,
        "title": title,
        "body": body,
        "author": "ann",
        "tags": ["a", "b"],
        "groups": ["sales"],
        **extra,
    }


def _envelope(op: str, *, lsn: int, before: Any = None, after: Any = None, table: str = "articles") -> bytes:
    source = {
        "version": "3.6.1.Final",
        "connector": "postgresql",
        "name": "cdc",
        "ts_ms": COMMIT_MS,
        "snapshot": "false",
        "db": "app",
        "schema": "public",
        "table": table,
        "txId": 732,
        "lsn": lsn,
    }
    return json.dumps(
        {"before": before, "after": after, "source": source, "op": op, "ts_ms": COMMIT_MS + 300}
    ).encode()


def _key(**columns: Any) -> bytes:
    return json.dumps(columns).encode()


def change(
    op: str, id: int, *, lsn: int, topic: str = TOPIC, key: dict[str, Any] | None = None, **row: Any
) -> RowChange:
    after = None if op == "d" else _row(id, **row)
    # Under REPLICA IDENTITY DEFAULT a delete's `before` has the key; other columns are type defaults.
    before = {"id": id, "tenant": "", "title": None, "body": None} if op == "d" else None
    record = decode_record(
        topic, _key(**(key or {"id": id})), _envelope(op, lsn=lsn, before=before, after=after)
    )
    assert isinstance(record, RowChange)
    return record


def tombstone(id: int) -> Tombstone:
    record = decode_record(TOPIC, _key(id=id), None)
    assert isinstance(record, Tombstone)
    return record


def truncate(*, lsn: int, topic: str = TOPIC) -> Truncate:
    record = decode_record(topic, None, _envelope("t", lsn=lsn))
    assert isinstance(record, Truncate)
    return record


@pytest.fixture
def ingest() -> CdcIngest:
    return CdcIngest(
        mappings=MAPPINGS, tracker=InMemoryRowTracker(), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)
    )


def one(results: list[list[DocumentChanged]]) -> DocumentChanged:
    (events,) = results
    (event,) = events
    return event


class IndexModel:
    """The indexer's fence in miniature: per document the highest version wins, deletes win ties."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[int, bool]] = {}

    def apply(self, events: list[DocumentChanged]) -> None:
        for e in events:
            key, deleted = (e.tenant, e.document_id), e.op is ChangeOp.DELETE
            current = self.docs.get(key)
            if current is None or e.version > current[0] or (e.version == current[0] and deleted):
                self.docs[key] = (e.version, deleted)

    def live(self) -> set[tuple[str, str]]:
        return {key for key, (_, deleted) in self.docs.items() if not deleted}


# --- envelopes ------------------------------------------------------------------------------------


def test_create_update_and_snapshot_read_become_upserts_versioned_by_lsn(ingest: CdcIngest) -> None:
    created = one(ingest.handle([change("c", 1, lsn=100)]))
    assert created.op is ChangeOp.UPSERT
    assert (created.tenant, created.document_id) == ("acme", "article-1")
    assert (created.version, created.version_kind) == (upsert_version(100), VersionKind.LSN)
    assert created.occurred_at == datetime.fromtimestamp(COMMIT_MS / 1000, tz=UTC)  # the commit time
    assert created.source.kind is SourceKind.CDC and created.source.name == "postgres:public.articles"
    assert created.title == "Refunds"
    assert created.blocks[0].kind is BlockKind.TITLE
    assert "Within 30 days." in " ".join(b.text for b in created.blocks)
    assert created.metadata == {"author": "ann", "tags": ["a", "b"]}
    assert created.acl == ["sales", "staff"]

    updated = one(ingest.handle([change("u", 1, lsn=200, body="Within 60 days.")]))
    assert updated.version == upsert_version(200) > created.version
    assert "Within 60 days." in " ".join(b.text for b in updated.blocks)

    read = one(ingest.handle([change("r", 2, lsn=50)]))
    assert read.op is ChangeOp.UPSERT and read.document_id == "article-2"


def test_delete_takes_the_document_from_row_state_not_the_defaulted_before_image(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 1, lsn=100, tenant="globex")])
    deleted = one(ingest.handle([change("d", 1, lsn=300)]))  # `before` says tenant "" (a default)
    assert deleted.op is ChangeOp.DELETE and not deleted.blocks
    assert (deleted.tenant, deleted.document_id, deleted.version) == (
        "globex",
        "article-1",
        delete_version(300),
    )


def test_delete_of_a_row_never_seen_needs_its_document_decided_by_the_key() -> None:
    notes = CdcIngest(mappings=MAPPINGS, tracker=InMemoryRowTracker())
    record = decode_record(
        "cdc.public.notes",
        _key(slug="faq"),
        _envelope("d", lsn=10, before={"slug": "faq", "body": None}, table="notes"),
    )
    assert one(notes.handle([record])).document_id == "faq"  # tenant fixed, id from the key: fine
    with pytest.raises(RowNotMappable, match="REPLICA IDENTITY FULL"):
        CdcIngest(mappings=MAPPINGS, tracker=InMemoryRowTracker()).handle([change("d", 9, lsn=10)])


def test_tombstone_repeats_the_delete_and_survives_compaction(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 1, lsn=100)])
    deleted = one(ingest.handle([change("d", 1, lsn=300)]))
    again = one(ingest.handle([tombstone(1)]))
    assert (again.op, again.document_id, again.version) == (ChangeOp.DELETE, "article-1", deleted.version)
    # After compaction only the tombstone is left of a delete: it still deletes, and wins the tie.
    ingest.handle([change("c", 2, lsn=400)])
    late = one(ingest.handle([tombstone(2)]))
    assert late.op is ChangeOp.DELETE and late.version == upsert_version(400)
    model = IndexModel()
    model.apply([*ingest.handle([change("c", 3, lsn=500)])[0], *ingest.handle([tombstone(3)])[0]])
    assert model.live() == set()
    assert ingest.handle([tombstone(99)]) == [[]]  # never published: nothing to delete


def test_primary_key_change_deletes_the_old_document_and_creates_the_new_one(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 2, lsn=100)])
    # Debezium: delete (old key), tombstone (old key), create (new key), all at the update's LSN.
    results = ingest.handle([change("d", 2, lsn=200), tombstone(2), change("c", 3, lsn=200)])
    model = IndexModel()
    model.apply([e for events in results for e in events])
    assert model.live() == {("acme", "article-3")}
    assert model.docs[("acme", "article-2")][1] is True


def test_primary_key_change_keeps_a_document_whose_id_is_not_the_key_in_any_order() -> None:
    mappings = CdcMappings(
        topic_prefix="cdc",
        tables=[TableMapping(table="public.articles", document_id="{title}", tenant="acme", text=["body"])],
    )
    first = CdcIngest(mappings=mappings, tracker=InMemoryRowTracker())
    first.handle([change("c", 2, lsn=100)])
    halves = first.handle([change("d", 2, lsn=200), change("c", 3, lsn=200)])
    for order in (halves, halves[::-1]):
        model = IndexModel()
        model.apply([e for events in order for e in events])
        assert model.live() == {("acme", "Refunds")}  # the create's extra version bit wins


def test_an_update_that_moves_the_row_to_another_tenant_deletes_it_from_the_first(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 1, lsn=100, tenant="acme")])
    moved = ingest.handle([change("u", 1, lsn=200, tenant="globex")])
    assert [(e.op, e.tenant) for e in moved[0]] == [(ChangeOp.DELETE, "acme"), (ChangeOp.UPSERT, "globex")]
    # A crash after the row state was written and before the publish: the redelivery yields the same.
    assert ingest.handle([change("u", 1, lsn=200, tenant="globex")]) == moved


def test_truncate_deletes_every_document_the_table_had_and_only_those(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 1, lsn=100), change("c", 2, lsn=110), change("c", 3, lsn=120)])
    ingest.handle([change("d", 3, lsn=130)])
    ingest.handle([change("c", 4, lsn=900)])  # inserted after the truncate, delivered before it
    (deletes,) = ingest.handle([truncate(lsn=500)])
    assert sorted(e.document_id for e in deletes) == ["article-1", "article-2"]
    assert {(e.op, e.version) for e in deletes} == {(ChangeOp.DELETE, delete_version(500))}
    # Redelivered: the same deletes again (the index fence makes them no-ops).
    assert ingest.handle([truncate(lsn=500)]) == [deletes]
    # A change from before the truncate arriving late (another partition) cannot bring a row back.
    late = one(ingest.handle([change("c", 5, lsn=450)]))
    assert (late.op, late.version) == (ChangeOp.DELETE, delete_version(500))
    assert ingest.handle([change("u", 1, lsn=120)]) == [[]]  # older than the truncate that deleted it


def test_replaying_old_changes_after_newer_ones_emits_nothing(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 1, lsn=100), change("u", 1, lsn=200, body="Newer.")])
    assert ingest.handle([change("c", 1, lsn=100)]) == [[]]
    assert one(ingest.handle([change("u", 1, lsn=200, body="Newer.")])).version == upsert_version(200)


def test_toast_placeholder_is_never_indexed_and_leaves_row_state_untouched(ingest: CdcIngest) -> None:
    ingest.handle([change("c", 1, lsn=100)])
    with pytest.raises(UnavailableValue, match="body") as raised:
        ingest.handle([change("u", 1, lsn=200, title="New title", body=PLACEHOLDER)])
    assert PLACEHOLDER in str(raised.value) and "New title" not in str(raised.value)
    with pytest.raises(UnavailableValue, match="groups"):
        ingest.handle([change("u", 1, lsn=210, groups=[PLACEHOLDER])])
    # Nothing was recorded: the next real change of the row is planned against lsn 100.
    assert one(ingest.handle([change("u", 1, lsn=300)])).version == upsert_version(300)


def test_a_row_with_no_text_shows_nothing(ingest: CdcIngest) -> None:
    event = one(ingest.handle([change("c", 1, lsn=100, title="", body="  ")]))
    assert event.op is ChangeOp.DELETE and event.version == upsert_version(100)


def test_unmapped_tables_and_unmappable_rows_are_refused_without_values(ingest: CdcIngest) -> None:
    with pytest.raises(UnmappedTable, match=r"cdc\.public\.users"):
        ingest.handle([change("c", 1, lsn=1, topic="cdc.public.users")])
    other_table = decode_record(TOPIC, _key(id=1), _envelope("c", lsn=1, after=_row(1), table="users"))
    with pytest.raises(UnmappedTable, match=r"public\.users"):
        ingest.handle([other_table])
    with pytest.raises(RowNotMappable, match="tenant") as raised:
        ingest.handle([change("c", 1, lsn=1, tenant="not a tenant!")])
    assert "not a tenant!" not in str(raised.value)
    no_body = decode_record(TOPIC, _key(id=1), _envelope("c", lsn=1, after={"id": 1, "tenant": "acme"}))
    with pytest.raises(RowNotMappable, match="title"):
        ingest.handle([no_body])


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (b'{"id":1}', b"not json", "not JSON"),
        (b'{"id":1}', b"[1, 2]", "list"),
        (b'{"id":1}', b'{"op": "c", "after": {}}', "source"),
        (b'{"id":1}', _envelope("c", lsn=1, after={"id": 1}).replace(b'"lsn": 1', b'"lsn": "1"'), "lsn"),
        (b'{"id":1}', _envelope("m", lsn=1), "unsupported op 'm'"),
        (b'{"id":1}', _envelope("c", lsn=1), "without `after`"),
        (None, _envelope("c", lsn=1, after={"id": 1}), "primary key"),
        (None, None, "tombstone without a key"),
    ],
)
def test_malformed_records_are_poison(key: bytes | None, value: bytes | None, problem: str) -> None:
    with pytest.raises(MalformedChangeEvent, match=problem):
        decode_record(TOPIC, key, value)
    record = ConsumerRecord(TOPIC, 0, 7, 0, 0, key, value, None, 0, 0, ())
    with pytest.raises(codec.PoisonMessage, match=problem):
        decode(record)


def test_envelopes_with_converter_schemas_are_unwrapped() -> None:
    wrapped = json.dumps(
        {"schema": {"type": "struct"}, "payload": json.loads(_envelope("c", lsn=5, after=_row(1)))}
    )
    record = decode_record(TOPIC, _key(id=1), wrapped.encode())
    assert isinstance(record, RowChange) and record.lsn == 5 and record.table == "public.articles"


def test_mapping_files_are_validated(tmp_path: Path) -> None:
    toml = tmp_path / "mappings.toml"
    toml.write_text(
        'topic_prefix = "cdc"\n[[tables]]\ntable = "public.notes"\ndocument_id = "{slug}"\n'
        'tenant = "acme"\ntext = ["body"]\n'
    )
    assert load_mappings(toml).by_topic()["cdc.public.notes"].text == ["body"]
    bad = tmp_path / "bad.json"
    for table in (
        {"table": "public.t", "document_id": "{id}", "text": "{b}"},  # no tenant at all
        {"table": "public.t", "document_id": "{id}", "tenant": "a", "tenant_column": "t", "text": "{b}"},
        {"table": "public.t", "document_id": "{id.__class__}", "tenant": "a", "text": "{b}"},
        {"table": "public.t", "document_id": "fixed", "tenant": "a", "text": "{b}"},
    ):
        bad.write_text(json.dumps({"topic_prefix": "cdc", "tables": [table]}))
        with pytest.raises(CdcError):
            load_mappings(bad)


def test_the_consumer_reads_every_table_topic_of_the_connector_so_unmapped_ones_are_noticed() -> None:
    pattern = re.compile(MAPPINGS.topic_pattern())
    assert pattern.match("cdc.public.articles") and pattern.match("cdc.public.users")  # mapped, unmapped
    for other in ("cdc.transaction", "__debezium-heartbeat.cdc", "cdcx.public.a", "cdc.public.a.b"):
        assert not pattern.match(other)
