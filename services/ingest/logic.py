"""Normalise an intake envelope into a document change event. Pure: no I/O, the clock is passed in."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

from schemas import (
    BlockKind,
    ChangeOp,
    DocumentChanged,
    IngestDocument,
    SourceKind,
    SourceRef,
    TextBlock,
    VersionKind,
)
from schemas.documents import MAX_DOCUMENT_BYTES
from services.ingest.errors import DocumentTooLarge, EmptyDocument, InvalidDocument, UnsupportedContentType
from services.ingest.formats import BINARY_CONTENT_TYPES, MAX_PDF_PAGES, PDF, parse_binary
from services.ingest.parsing import PARSERS, media_type_of, parse

SUPPORTED_CONTENT_TYPES = sorted({*PARSERS, *BINARY_CONTENT_TYPES})


def event_id_for(*, tenant: str, document_id: str, version: int, op: ChangeOp) -> str:
    """Deterministic id of a change: the same change submitted twice is recognisably the same event."""
    return hashlib.sha256(f"{tenant}\x1f{document_id}\x1f{version}\x1f{op.value}".encode()).hexdigest()[:32]


def decode_body(command: IngestDocument, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """The document's text, from `text` or from base64 `data_base64` decoded as UTF-8."""
    if command.text is not None:
        if len(command.text.encode()) > max_bytes:
            raise DocumentTooLarge(f"document text exceeds {max_bytes} bytes")
        return command.text
    try:
        text = decode_bytes(command, max_bytes=max_bytes).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDocument("document bytes are not UTF-8 text for this content type") from exc
    if "\x00" in text:
        raise InvalidDocument("document text contains NUL characters: binary data sent as a text type?")
    return text


def decode_bytes(command: IngestDocument, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The document's bytes, from base64 `data_base64` (the only way a binary format can travel)."""
    if command.data_base64 is None:
        raise InvalidDocument("DOCX and PDF are binary formats: send them base64-encoded in data_base64")
    if len(command.data_base64) > (max_bytes * 4) // 3 + 4:
        raise DocumentTooLarge(f"document body exceeds {max_bytes} bytes")
    try:
        return base64.b64decode(command.data_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidDocument("data_base64 is not valid base64") from exc


def parse_body(
    command: IngestDocument, *, max_bytes: int = MAX_DOCUMENT_BYTES, max_pages: int = MAX_PDF_PAGES
) -> list[TextBlock]:
    """Structural blocks of an upsert's body. A DOCX or PDF file must yield text itself: an empty
    parse there means extraction failed (scanned pages, text drawn as images), which the sender must
    hear about, so a title sent beside it does not make it a document."""
    media_type = media_type_of(command.content_type)
    if media_type in PARSERS:
        return parse(decode_body(command, max_bytes=max_bytes), content_type=media_type)
    if media_type not in BINARY_CONTENT_TYPES:
        raise UnsupportedContentType(
            f"no parser for content type {media_type!r}; supported: {SUPPORTED_CONTENT_TYPES}"
        )
    data = decode_bytes(command, max_bytes=max_bytes)
    blocks = parse_binary(data, media_type=media_type, max_pages=max_pages)
    # Extractors can emit NUL from broken font maps; it means nothing, and Postgres refuses it.
    blocks = [
        b.model_copy(update={"text": b.text.replace("\x00", "")}) if "\x00" in b.text else b for b in blocks
    ]
    if not any(b.text.strip() for b in blocks):
        hint = " (a scanned PDF has no text layer, and intake does no OCR)" if media_type == PDF else ""
        raise EmptyDocument(f"the file contains no extractable text{hint}")
    return blocks


def normalise(
    command: IngestDocument,
    *,
    received_at: datetime,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_pages: int = MAX_PDF_PAGES,
) -> DocumentChanged:
    """A change event for `command`; its version defaults to the receive time in milliseconds."""
    if command.version is not None:
        version, version_kind = command.version, command.version_kind or VersionKind.SEQUENCE
    else:
        version, version_kind = int(received_at.timestamp() * 1000), VersionKind.TIMESTAMP_MS
    source = command.source or SourceRef(kind=SourceKind.API)
    blocks: list[TextBlock] = []
    if command.op is ChangeOp.UPSERT:
        blocks = parse_body(command, max_bytes=max_bytes, max_pages=max_pages)
        if command.title:
            blocks.insert(0, TextBlock(kind=BlockKind.TITLE, text=command.title.strip()))
        if not any(b.text.strip() for b in blocks):
            raise EmptyDocument("the document contains no text")
    title = command.title or next(
        (b.text for b in blocks if b.kind in (BlockKind.TITLE, BlockKind.HEADING)), None
    )
    return DocumentChanged(
        event_id=event_id_for(
            tenant=command.tenant, document_id=command.document_id, version=version, op=command.op
        ),
        op=command.op,
        tenant=command.tenant,
        document_id=command.document_id,
        version=version,
        version_kind=version_kind,
        source=source,
        occurred_at=received_at,
        content_type=command.content_type if command.op is ChangeOp.UPSERT else None,
        title=title,
        blocks=blocks,
        metadata=command.metadata,
        acl=sorted(set(command.acl)),
    )
