"""Intake normalisation: envelopes of every supported type become change events; bad input is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from schemas import BlockKind, ChangeOp, IngestDocument, VersionKind
from services.ingest.errors import DocumentTooLarge, EmptyDocument, InvalidDocument, UnsupportedContentType
from services.ingest.logic import normalise

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _normalise(**fields: object) -> object:
    return normalise(
        IngestDocument.model_validate({"tenant": "acme", "document_id": "d1", **fields}), received_at=NOW
    )


def test_plain_text_paragraphs_and_default_timestamp_version() -> None:
    event = _normalise(text="First line\nwraps here.\n\nSecond paragraph.")
    assert [b.text for b in event.blocks] == ["First line wraps here.", "Second paragraph."]
    assert event.version == int(NOW.timestamp() * 1000)
    assert event.version_kind is VersionKind.TIMESTAMP_MS
    assert event.op is ChangeOp.UPSERT


def test_explicit_version_is_a_sender_sequence_and_event_id_is_deterministic() -> None:
    a = _normalise(text="x", version=7)
    b = _normalise(text="x", version=7)
    assert a.version == 7 and a.version_kind is VersionKind.SEQUENCE
    assert a.event_id == b.event_id
    assert a.event_id != _normalise(text="x", version=8).event_id


def test_markdown_headings_lists_tables_and_code() -> None:
    text = (
        "# Refunds\n\nWe refund within 30 days.\n\n## Exceptions\n\n- gift cards\n- sale items\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode here\n```\n"
    )
    event = _normalise(text=text, content_type="text/markdown")
    kinds = [(b.kind, b.level) for b in event.blocks]
    assert kinds == [
        (BlockKind.HEADING, 1),
        (BlockKind.PARAGRAPH, 0),
        (BlockKind.HEADING, 2),
        (BlockKind.LIST_ITEM, 0),
        (BlockKind.LIST_ITEM, 0),
        (BlockKind.TABLE, 0),
        (BlockKind.CODE, 0),
    ]
    assert event.blocks[5].text == "a | b\n1 | 2"
    assert event.title == "Refunds"


def test_html_keeps_structure_and_drops_scripts() -> None:
    html = (
        "<html><head><title>Release 4.2</title><script>alert('x')</script></head><body>"
        "<h1>What's new</h1><p>Faster <b>exports</b>.</p><ul><li>CSV</li><li>Parquet</li></ul>"
        "<table><tr><th>plan</th><th>limit</th></tr><tr><td>pro</td><td>10</td></tr></table></body></html>"
    )
    event = _normalise(
        data_base64=base64.b64encode(html.encode()).decode(), content_type="text/html; charset=utf-8"
    )
    assert [(b.kind, b.text) for b in event.blocks] == [
        (BlockKind.TITLE, "Release 4.2"),
        (BlockKind.HEADING, "What's new"),
        (BlockKind.PARAGRAPH, "Faster exports."),
        (BlockKind.LIST_ITEM, "CSV"),
        (BlockKind.LIST_ITEM, "Parquet"),
        (BlockKind.TABLE, "plan | limit\npro | 10"),
    ]
    assert all("alert" not in b.text for b in event.blocks)


def test_title_becomes_the_first_block() -> None:
    event = _normalise(text="Body.", title="A title")
    assert event.blocks[0].kind is BlockKind.TITLE and event.title == "A title"


def test_delete_has_no_body_and_keeps_identity() -> None:
    event = _normalise(op="delete", version=9)
    assert event.op is ChangeOp.DELETE and event.blocks == [] and event.version == 9


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"text": "x", "content_type": "application/zip"}, UnsupportedContentType),
        ({"text": "x", "content_type": "application/pdf"}, InvalidDocument),  # binary needs data_base64
        ({"data_base64": "not base64!!"}, InvalidDocument),
        ({"data_base64": base64.b64encode(b"\xff\xfe\x00bad").decode()}, InvalidDocument),
        ({"text": "   \n\n  "}, EmptyDocument),
        ({"text": "<p> </p>", "content_type": "text/html"}, EmptyDocument),
    ],
)
def test_bad_input_gets_a_clear_error(fields: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        _normalise(**fields)


def test_oversize_body_is_refused() -> None:
    command = IngestDocument(tenant="acme", document_id="d", text="x" * 2000)
    with pytest.raises(DocumentTooLarge):
        normalise(command, received_at=NOW, max_bytes=1000)
    encoded = IngestDocument(
        tenant="acme", document_id="d", data_base64=base64.b64encode(b"x" * 2000).decode()
    )
    with pytest.raises(DocumentTooLarge):
        normalise(encoded, received_at=NOW, max_bytes=1000)


def test_nul_characters_are_refused_before_they_reach_postgres() -> None:
    """Found by the OpenAPI fuzz test: a NUL anywhere in the envelope was a 500 from the journal."""
    import base64

    import pytest
    from pydantic import ValidationError

    from schemas import IngestDocument
    from services.ingest.errors import InvalidDocument
    from services.ingest.logic import decode_body

    for bad in ({"acl": ["\u0000"]}, {"title": "a\u0000b"}, {"metadata": {"k\u0000": 1}}):
        with pytest.raises(ValidationError):
            IngestDocument.model_validate({"tenant": "t", "document_id": "d", "text": "x", **bad})
    command = IngestDocument(tenant="t", document_id="d", data_base64=base64.b64encode(b"a\x00b").decode())
    with pytest.raises(InvalidDocument):
        decode_body(command)
