"""Debezium change records → document change events, given what is known of each row. Pure: no I/O.

Versions. Every event's version comes from the Postgres LSN of its change: `2·LSN + 1` for an upsert and
`2·LSN` for a delete. Both halves of a primary-key change share one LSN; the extra bit orders the
delete of the old row before the upsert of the new one, so a document whose id does not come from the
key (same document, new key) is not deleted by its own move, whatever order the two arrive in.

Row state. Some changes cannot be turned into events from the record alone: a tombstone carries only a
key, a delete under `REPLICA IDENTITY DEFAULT` carries only key columns (the others are defaults, not
values), a truncate names no rows at all, and an update may move a row to another document (a new
tenant). So the service keeps, per row key, the document it became and the LSN of its latest change
(`TrackedRow`). Every plan is a function of the record and that state *as it was before the record*:
a record redelivered after its state was written (a crash between the write and the offset commit)
yields the same events again, and the index's version fence makes them no-ops.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas import ChangeOp, DocumentChanged, IngestDocument, SourceKind, SourceRef, VersionKind
from schemas.common import MetadataValue
from schemas.sources import CdcMappings, TableMapping, template_columns
from services.ingest.cdc.envelope import CdcRecord, RowChange, Tombstone, Truncate
from services.ingest.errors import EmptyDocument, RowNotMappable, UnavailableValue, UnmappedTable
from services.ingest.logic import normalise

__all__ = [
    "Identity",
    "Plan",
    "RowWrite",
    "TrackedRow",
    "delete_version",
    "plan_row_change",
    "plan_tombstone",
    "plan_truncate",
    "upsert_version",
]

_FIELD = re.compile(r"\{([^{}]*)\}")
_TITLE_MAX = 1024


def upsert_version(lsn: int) -> int:
    return 2 * lsn + 1


def delete_version(lsn: int) -> int:
    return 2 * lsn


@dataclass(frozen=True, slots=True)
class Identity:
    """The document a row is."""

    tenant: str
    document_id: str


@dataclass(frozen=True, slots=True)
class TrackedRow:
    """What is known of one source row: its document, its latest LSN, whether (and at which version)
    its document was deleted, and the document it stopped being at `lsn` (an identity change)."""

    identity: Identity
    lsn: int
    deleted_version: int | None = None
    retracted: Identity | None = None


@dataclass(frozen=True, slots=True)
class RowWrite:
    source: str  # the Debezium topic: one connector's table
    row_key: str
    row: TrackedRow


@dataclass
class Plan:
    """Events to publish, in order, and the row state to write before publishing them."""

    events: list[DocumentChanged] = field(default_factory=list)
    writes: list[RowWrite] = field(default_factory=list)
    truncated: tuple[str, int] | None = None  # (source, lsn): a watermark for late row changes


def mapping_for(mappings: CdcMappings, record: CdcRecord) -> TableMapping:
    """The table mapping of the record's topic; the envelope must name that same table."""
    mapping = mappings.by_topic().get(record.topic)
    if mapping is None:
        raise UnmappedTable(f"no table mapping reads topic {record.topic}")
    if isinstance(record, RowChange | Truncate) and record.table != mapping.table:
        raise UnmappedTable(f"topic {record.topic} carries {record.table}, mapped is {mapping.table}")
    return mapping


# --- rows to document fields -------------------------------------------------------------------


def _check_available(row: dict[str, Any], columns: list[str], placeholder: str, table: str) -> None:
    toasted = [
        column
        for column in columns
        if row.get(column) == placeholder
        or (isinstance(row.get(column), list) and placeholder in row[column])
    ]
    if toasted:
        raise UnavailableValue(
            f"{table}: column(s) {', '.join(sorted(set(toasted)))} carry Debezium's placeholder "
            f"{placeholder!r} (an unchanged TOASTed value; the table's REPLICA IDENTITY is not FULL); the "
            "change is not indexed so the placeholder never replaces the text. Set REPLICA IDENTITY FULL "
            "or the connector's reselect post-processor"
        )


def _render(template: str, row: dict[str, Any], table: str) -> str:
    missing = [name for name in template_columns(template) if name not in row]
    if missing:
        raise RowNotMappable(f"{table}: the row has no column(s) {', '.join(missing)}")
    return _FIELD.sub(lambda m: "" if row[m.group(1)] is None else _text(row[m.group(1)]), template)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def identity_of(mapping: TableMapping, row: dict[str, Any]) -> Identity:
    document_id = _render(mapping.document_id, row, mapping.table)
    if mapping.tenant is not None:
        tenant = mapping.tenant
    else:
        assert mapping.tenant_column is not None
        if row.get(mapping.tenant_column) is None:
            raise RowNotMappable(f"{mapping.table}: the tenant column {mapping.tenant_column} is null")
        tenant = _text(row[mapping.tenant_column])
    if not document_id.strip():
        raise RowNotMappable(f"{mapping.table}: the document id renders empty")
    return Identity(tenant=tenant, document_id=document_id)


def _metadata_value(value: Any) -> MetadataValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        for kind in (str, int, float):
            if all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
                return value
    return _text(value)  # a JSON column, a mixed array: kept as its JSON text


def _acl(mapping: TableMapping, row: dict[str, Any]) -> list[str]:
    groups = list(mapping.acl)
    if mapping.acl_column is not None:
        value = row.get(mapping.acl_column)
        if isinstance(value, list):
            groups += [str(v) for v in value if v is not None]
        elif isinstance(value, str):
            groups += [part.strip() for part in value.split(",")]
        elif value is not None:
            raise RowNotMappable(
                f"{mapping.table}: the ACL column {mapping.acl_column} is not text or text[]"
            )
    return [g for g in groups if g]


def _mapped_columns(mapping: TableMapping) -> list[str]:
    templates = [mapping.document_id, mapping.title or "", *mapping.text_templates]
    columns = [c for t in templates for c in template_columns(t)]
    return [
        *columns,
        *mapping.metadata.values(),
        *(c for c in (mapping.tenant_column, mapping.acl_column) if c is not None),
    ]


def _change_event(
    mappings: CdcMappings,
    mapping: TableMapping,
    identity: Identity,
    *,
    op: ChangeOp,
    version: int,
    occurred_at: datetime,
    row: dict[str, Any] | None = None,
) -> DocumentChanged:
    """A `DocumentChanged` through intake's own normalisation (parsing, title block, size limit)."""
    body: dict[str, Any] = {}
    if op is ChangeOp.UPSERT:
        assert row is not None
        title = _render(mapping.title, row, mapping.table).strip() if mapping.title else ""
        body = {
            "text": "\n\n".join(
                text for t in mapping.text_templates if (text := _render(t, row, mapping.table)).strip()
            ),
            "title": title[:_TITLE_MAX] or None,
            "content_type": mapping.content_type,
            "metadata": {key: _metadata_value(row.get(column)) for key, column in mapping.metadata.items()},
            "acl": _acl(mapping, row),
        }
    try:
        command = IngestDocument(
            tenant=identity.tenant,
            document_id=identity.document_id,
            op=op,
            version=version,
            version_kind=VersionKind.LSN,
            source=SourceRef(kind=SourceKind.CDC, name=f"{mappings.source_name}:{mapping.table}"[:128]),
            **body,
        )
    except ValidationError as exc:
        # Name the fields and problems, never the values: they are the source's rows.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RowNotMappable(f"{mapping.table}: not a valid document ({problems[:1500]})") from None
    return normalise(command, received_at=occurred_at)


# --- plans ---------------------------------------------------------------------------------------


def plan_row_change(
    change: RowChange,
    mappings: CdcMappings,
    *,
    tracked: TrackedRow | None,
    truncated_at: int | None,
) -> Plan:
    """Events for a create, update, snapshot read or delete of one row."""
    mapping = mapping_for(mappings, change)
    if tracked is not None and change.lsn < tracked.lsn:
        return Plan()  # older than what was applied to this row: a replay; the newer state stands
    if change.op == "d":
        return _plan_delete(change, mappings, mapping, tracked)
    assert change.after is not None
    row = change.after
    _check_available(row, _mapped_columns(mapping), mappings.unavailable_value_placeholder, mapping.table)
    identity = identity_of(mapping, row)
    source, key = change.topic, change.row_key
    if truncated_at is not None and change.lsn < truncated_at:
        # A change from before a truncate that arrived after it (another partition): already gone.
        version = delete_version(truncated_at)
        event = _change_event(
            mappings, mapping, identity, op=ChangeOp.DELETE, version=version, occurred_at=change.committed_at
        )
        row_state = TrackedRow(identity, truncated_at, deleted_version=version)
        return Plan([event], [RowWrite(source, key, row_state)])
    if tracked is not None and change.lsn == tracked.lsn:
        retracted = tracked.retracted  # a redelivery: the same events as the first time
    elif tracked is not None and tracked.deleted_version is None and tracked.identity != identity:
        retracted = tracked.identity  # the row now is another document: the old one goes
    else:
        retracted = None
    events = []
    if retracted is not None:
        events.append(
            _change_event(
                mappings,
                mapping,
                retracted,
                op=ChangeOp.DELETE,
                version=delete_version(change.lsn),
                occurred_at=change.committed_at,
            )
        )
    version = upsert_version(change.lsn)
    try:
        upsert = _change_event(
            mappings,
            mapping,
            identity,
            op=ChangeOp.UPSERT,
            version=version,
            occurred_at=change.committed_at,
            row=row,
        )
        deleted = None
    except EmptyDocument:
        # No text: the document shows nothing, like a deleted one (the version still fences).
        upsert = _change_event(
            mappings, mapping, identity, op=ChangeOp.DELETE, version=version, occurred_at=change.committed_at
        )
        deleted = version
    events.append(upsert)
    state = TrackedRow(identity, change.lsn, deleted_version=deleted, retracted=retracted)
    return Plan(events, [RowWrite(source, key, state)])


def _plan_delete(
    change: RowChange, mappings: CdcMappings, mapping: TableMapping, tracked: TrackedRow | None
) -> Plan:
    if tracked is not None:
        identity = tracked.identity
    elif set(mapping.identity_columns) <= set(change.key):
        identity = identity_of(mapping, change.key)  # the key alone says which document it was
    else:
        raise RowNotMappable(
            f"{mapping.table}: a delete of a row never seen, whose document is not decided by its key "
            f"columns alone ({', '.join(mapping.identity_columns)}); its `before` image cannot be trusted "
            "unless the table has REPLICA IDENTITY FULL"
        )
    version = delete_version(change.lsn)
    event = _change_event(
        mappings, mapping, identity, op=ChangeOp.DELETE, version=version, occurred_at=change.committed_at
    )
    state = TrackedRow(identity, change.lsn, deleted_version=version)
    return Plan([event], [RowWrite(change.topic, change.row_key, state)])


def plan_tombstone(
    tombstone: Tombstone, mappings: CdcMappings, *, tracked: TrackedRow | None, now: datetime
) -> Plan:
    """A tombstone deletes its row's document. Usually the delete before it already did (the same event
    again, a no-op); after log compaction the tombstone may be all that is left of the delete."""
    mapping = mapping_for(mappings, tombstone)
    if tracked is None:
        return Plan()  # never published as a document: nothing to delete
    # No LSN on a tombstone: a delete that ties with the row's latest upsert wins the tie in the index.
    version = tracked.deleted_version if tracked.deleted_version is not None else upsert_version(tracked.lsn)
    event = _change_event(
        mappings, mapping, tracked.identity, op=ChangeOp.DELETE, version=version, occurred_at=now
    )
    state = replace(tracked, deleted_version=version)
    return Plan([event], [RowWrite(tombstone.topic, tombstone.row_key, state)])


def plan_truncate(truncate: Truncate, mappings: CdcMappings, *, rows: list[tuple[str, TrackedRow]]) -> Plan:
    """Delete the document of every row the table had before the truncate.

    `rows` are the table's rows that were live before the truncate's LSN, plus those this same truncate
    already deleted (a redelivery publishes the same deletes again)."""
    mapping = mapping_for(mappings, truncate)
    version = delete_version(truncate.lsn)
    plan = Plan(truncated=(truncate.topic, truncate.lsn))
    for key, row in rows:
        plan.events.append(
            _change_event(
                mappings,
                mapping,
                row.identity,
                op=ChangeOp.DELETE,
                version=version,
                occurred_at=truncate.committed_at,
            )
        )
        plan.writes.append(RowWrite(truncate.topic, key, TrackedRow(row.identity, truncate.lsn, version)))
    return plan
