"""Document change events: what intake accepts, what it publishes, and what redaction produces."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.common import (
    AclGroup,
    ChangeOp,
    Contract,
    DocumentHeader,
    DocumentId,
    Metadata,
    SourceRef,
    TenantId,
    VersionKind,
)

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024


class BlockKind(StrEnum):
    """Structural role of a block of text, kept so the chunker can respect headings and tables."""

    TITLE = "title"
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST_ITEM = "list_item"
    TABLE = "table"
    CODE = "code"


class TextBlock(Contract):
    kind: BlockKind
    text: str
    level: Annotated[int, Field(ge=0, le=6)] = 0  # heading depth; 0 for body blocks
    page: Annotated[int | None, Field(ge=1)] = None  # 1-based page it starts on, in paged formats (PDF)


class IngestDocument(Contract):
    """Command: the JSON envelope a client sends to intake (`POST /v1/documents`)."""

    tenant: TenantId
    document_id: DocumentId
    op: ChangeOp = ChangeOp.UPSERT
    version: Annotated[int | None, Field(ge=0)] = None  # defaults to the receive time in ms
    version_kind: VersionKind | None = None
    content_type: Annotated[str, StringConstraints(max_length=128)] = "text/plain"
    text: str | None = None
    data_base64: str | None = None
    title: Annotated[str | None, StringConstraints(max_length=1024)] = None
    metadata: Metadata = Field(default_factory=dict)
    acl: list[AclGroup] = Field(default_factory=list)
    source: SourceRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: object) -> object:
        # U+0000 has no meaning in text, and Postgres (journal, graph, keys) refuses it in text columns.
        if _holds_nul(data):
            raise ValueError("strings may not contain the NUL character (U+0000)")
        return data

    @model_validator(mode="after")
    def _body_matches_op(self) -> IngestDocument:
        if self.op is ChangeOp.UPSERT and (self.text is None) == (self.data_base64 is None):
            raise ValueError("an upsert carries exactly one of `text` or `data_base64`")
        if self.op is ChangeOp.DELETE and (self.text is not None or self.data_base64 is not None):
            raise ValueError("a delete carries no body")
        return self


class DocumentChanged(DocumentHeader):
    """Event: a source document was created, updated or deleted (normalised, not yet redacted)."""

    kind: Literal["document.changed"] = "document.changed"
    content_type: str | None = None
    title: str | None = None
    blocks: list[TextBlock] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)
    acl: list[AclGroup] = Field(default_factory=list)

    @model_validator(mode="after")
    def _delete_has_no_body(self) -> DocumentChanged:
        if self.op is ChangeOp.DELETE and self.blocks:
            raise ValueError("a delete event carries no blocks")
        return self


class EntityMention(Contract):
    """A named entity found in the redacted text, located by block and character span."""

    block: Annotated[int, Field(ge=0)]
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    label: str
    text: str


class DocumentRedacted(DocumentHeader):
    """Event: a change with its PII replaced by per-tenant pseudonyms; safe to chunk, embed and index."""

    kind: Literal["document.redacted"] = "document.redacted"
    content_type: str | None = None
    title: str | None = None
    blocks: list[TextBlock] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)
    acl: list[AclGroup] = Field(default_factory=list)
    pii_counts: dict[str, int] = Field(default_factory=dict)
    # Entities the redaction pass already found, so graph extraction need not run NER again.
    mentions: list[EntityMention] | None = None


class Accepted(Contract):
    """Reply of intake once a change is durably stored."""

    event_id: str
    tenant: TenantId
    document_id: DocumentId
    version: int
    accepted_at: datetime


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False
