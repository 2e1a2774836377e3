"""Types shared by every Headwater message: identities, versions and the partition key."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

TenantId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DocumentId = Annotated[str, StringConstraints(min_length=1, max_length=512)]
AclGroup = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MetadataValue = str | int | float | bool | None | list[str] | list[int] | list[float]
Metadata = dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")], MetadataValue]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every wire model: unknown fields are refused so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChangeOp(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class VersionKind(StrEnum):
    """What the ordering `version` of a change was taken from."""

    LSN = "lsn"  # Postgres log sequence number, from CDC
    SEQUENCE = "sequence"  # a sender's monotonic sequence number per document
    TIMESTAMP_MS = "timestamp_ms"  # the source's modification time, in Unix milliseconds


class SourceKind(StrEnum):
    API = "api"
    WEBHOOK = "webhook"
    CDC = "cdc"
    FILE = "file"


class SourceRef(Contract):
    """Where a change came from, kept on every chunk so operators can trace it back."""

    kind: SourceKind
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "default"
    uri: str | None = None


class DocumentKey(Contract):
    """Identity of a document across every stage; its `partition_key` keeps its changes in order."""

    tenant: TenantId
    document_id: DocumentId

    @property
    def partition_key(self) -> bytes:
        return partition_key(self.tenant, self.document_id)


def partition_key(tenant: str, document_id: str) -> bytes:
    """Kafka key for a document: every change of one document lands on one partition, in order."""
    # The separator cannot appear in a tenant id, so the key is unambiguous.
    return f"{tenant}/{document_id}".encode()


class DocumentHeader(Contract):
    """Fields every per-document message carries, whatever the stage."""

    schema_version: int = 1
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    op: ChangeOp
    tenant: TenantId
    document_id: DocumentId
    version: Annotated[int, Field(ge=0)]
    version_kind: VersionKind = VersionKind.TIMESTAMP_MS
    source: SourceRef
    occurred_at: datetime = Field(default_factory=utc_now)

    @property
    def key(self) -> DocumentKey:
        return DocumentKey(tenant=self.tenant, document_id=self.document_id)
