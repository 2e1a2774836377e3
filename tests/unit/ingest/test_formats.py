"""Document formats: every supported content type parses its fixture into structural blocks; DOCX and
PDF go through `unstructured` offline, and broken, empty or oversized files get a clear 4xx error."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from schemas import BlockKind, DocumentChanged, IngestDocument, TextBlock
from services.ingest import partitioner
from services.ingest.errors import DocumentTooLarge, EmptyDocument, InvalidDocument, UnsupportedContentType
from services.ingest.formats import DOCX, PDF, blocks_from_elements
from services.ingest.logic import normalise
from tests.fixtures.documents.make_fixtures import make_pdf

# Before anything imports `unstructured`: its import would otherwise try the network.
partitioner.configure_offline()

from unstructured.documents.elements import (  # noqa: E402 - must follow configure_offline()
    ElementMetadata,
    Footer,
    ListItem,
    NarrativeText,
    PageBreak,
    PageNumber,
    Table,
    Text,
    Title,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "documents"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _ingest(data: bytes, content_type: str, **fields: object) -> DocumentChanged:
    command = IngestDocument.model_validate(
        {
            "tenant": "acme",
            "document_id": "d",
            "content_type": content_type,
            "data_base64": base64.b64encode(data).decode(),
            **fields,
        }
    )
    return normalise(command, received_at=NOW)


def _fixture(name: str, content_type: str) -> list[TextBlock]:
    return _ingest((FIXTURES / name).read_bytes(), content_type).blocks


def _shape(blocks: list[TextBlock]) -> list[tuple[BlockKind, int]]:
    return [(b.kind, b.level) for b in blocks]


def test_elements_map_to_blocks_with_heading_depth_rows_and_pages() -> None:
    table_html = "<table><tr><td>part</td><td>qty</td></tr><tr><td>valve</td><td>3</td></tr></table>"
    elements = [
        Title("Annual  report", metadata=ElementMetadata(category_depth=0, page_number=1)),
        NarrativeText("Sales grew\nin every region.", metadata=ElementMetadata(page_number=1)),
        Title("Costs", metadata=ElementMetadata(category_depth=1, page_number=1)),
        ListItem("Rent", metadata=ElementMetadata(page_number=1)),
        Footer("Page 1 of 2", metadata=ElementMetadata(page_number=1)),
        PageNumber("1", metadata=ElementMetadata(page_number=1)),
        PageBreak(""),
        Table("part qty valve 3", metadata=ElementMetadata(text_as_html=table_html, page_number=2)),
        Table("flat cells only", metadata=ElementMetadata(page_number=2)),
        Text("   ", metadata=ElementMetadata(page_number=2)),
        Title("Deep", metadata=ElementMetadata(category_depth=9)),
    ]

    blocks = blocks_from_elements(elements)

    assert [(b.kind, b.text, b.level, b.page) for b in blocks] == [
        (BlockKind.HEADING, "Annual report", 1, 1),
        (BlockKind.PARAGRAPH, "Sales grew in every region.", 0, 1),
        (BlockKind.HEADING, "Costs", 2, 1),
        (BlockKind.LIST_ITEM, "Rent", 0, 1),
        (BlockKind.TABLE, "part | qty\nvalve | 3", 0, 2),
        (BlockKind.TABLE, "flat cells only", 0, 2),
        (BlockKind.HEADING, "Deep", 6, None),
    ]


def test_html_fixture_keeps_title_headings_lists_and_table() -> None:
    blocks = _fixture("sample.html", "text/html")
    assert _shape(blocks) == [
        (BlockKind.TITLE, 0),
        (BlockKind.HEADING, 1),
        (BlockKind.PARAGRAPH, 0),
        (BlockKind.HEADING, 2),
        (BlockKind.LIST_ITEM, 0),
        (BlockKind.LIST_ITEM, 0),
        (BlockKind.TABLE, 0),
    ]
    assert "copper weathervane" in blocks[2].text
    assert blocks[-1].text.splitlines()[1] == "fresnel lens polish | renewed"
    assert not any("not indexed" in b.text or "Home" in b.text or b.text == "html" for b in blocks)


def test_markdown_fixture_keeps_headings_lists_table_and_code() -> None:
    blocks = _fixture("sample.md", "text/markdown")
    assert _shape(blocks) == [
        (BlockKind.HEADING, 1),
        (BlockKind.PARAGRAPH, 0),
        (BlockKind.HEADING, 2),
        *[(BlockKind.LIST_ITEM, 0)] * 3,
        (BlockKind.TABLE, 0),
        (BlockKind.CODE, 0),
        (BlockKind.PARAGRAPH, 0),
    ]
    assert "glacier meltwater turbidity" in blocks[1].text
    assert blocks[6].text.splitlines()[1] == "upper ford | 42 | 6.5"


def test_plain_text_fixture_is_paragraphs() -> None:
    blocks = _fixture("sample.txt", "text/plain")
    assert [b.kind for b in blocks] == [BlockKind.PARAGRAPH] * 3
    assert "orchard frost sensors" in blocks[1].text


def test_docx_fixture_keeps_heading_levels_and_table_rows() -> None:
    event = _ingest((FIXTURES / "sample.docx").read_bytes(), DOCX)
    assert _shape(event.blocks) == [
        (BlockKind.HEADING, 1),
        (BlockKind.PARAGRAPH, 0),
        (BlockKind.PARAGRAPH, 0),
        (BlockKind.HEADING, 2),
        (BlockKind.TABLE, 0),
        (BlockKind.PARAGRAPH, 0),
    ]
    assert event.title == "Warehouse Audit Summary"
    assert event.blocks[4].text.splitlines() == [
        "Item | Expected | Counted",
        "tungsten filament spools | 40 | 37",
        "ceramic insulator caps | 120 | 120",
    ]


def test_pdf_fixture_keeps_both_pages_and_drops_page_numbers() -> None:
    blocks = _fixture("sample.pdf", PDF)
    assert [(b.kind, b.page) for b in blocks] == [
        (BlockKind.HEADING, 1),
        (BlockKind.PARAGRAPH, 1),
        (BlockKind.PARAGRAPH, 1),
        (BlockKind.HEADING, 2),
        (BlockKind.PARAGRAPH, 2),
        (BlockKind.PARAGRAPH, 2),
    ]
    assert blocks[3].text == "Sediment Findings"
    assert "basalt sediment cores" in blocks[4].text
    assert "\n" not in blocks[4].text  # lines of one paragraph are joined
    assert all(b.text not in {"1", "2"} for b in blocks)


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(FIXTURES / "sample.pdf"))
    writer.encrypt(user_password="secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _docx_without_text() -> bytes:
    source = zipfile.ZipFile(FIXTURES / "sample.docx")
    body = (
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p/><w:p><w:r><w:t>   </w:t></w:r></w:p></w:body></w:document>"
    )
    files = {i.filename: source.read(i.filename) for i in source.infolist()}
    return _zip({**files, "word/document.xml": body})


@pytest.mark.parametrize(
    ("data", "content_type", "error"),
    [
        (b"%PDF-1.4\n" + b"\x00garbage" * 50, PDF, InvalidDocument),
        (b"just some text", PDF, InvalidDocument),
        ((FIXTURES / "sample.docx").read_bytes(), PDF, InvalidDocument),
        (b"PK\x03\x04 not really a zip", DOCX, InvalidDocument),
        (_zip({"hello.txt": b"a zip that is not a DOCX"}), DOCX, InvalidDocument),
        (_zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<x/>"}), DOCX, InvalidDocument),
        (
            _zip(
                {
                    "[Content_Types].xml": (
                        b'<Types><Override PartName="/word/document.xml" ContentType="application/'
                        b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
                    ),
                    "word/document.xml": b"<w:document><unclosed>",
                }
            ),
            DOCX,
            InvalidDocument,
        ),
        (_encrypted_pdf(), PDF, InvalidDocument),
        (make_pdf([("", [])], page_numbers=False), PDF, EmptyDocument),
        (make_pdf([("", [])]), PDF, EmptyDocument),  # only a page number: furniture is not content
        (_docx_without_text(), DOCX, EmptyDocument),
    ],
    ids=[
        "pdf-header-then-garbage",
        "not-a-pdf",
        "docx-sent-as-pdf",
        "not-a-zip",
        "zip-not-docx",
        "docx-without-main-part",
        "docx-broken-xml",
        "pdf-with-password",
        "pdf-blank-page",
        "pdf-page-number-only",
        "docx-blank",
    ],
)
def test_broken_or_empty_files_get_a_clear_error(
    data: bytes, content_type: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _ingest(data, content_type)


def test_a_title_does_not_make_an_empty_file_a_document() -> None:
    with pytest.raises(EmptyDocument):
        _ingest(make_pdf([("", [])], page_numbers=False), PDF, title="Scanned invoice")


def test_binary_formats_must_travel_as_base64() -> None:
    command = IngestDocument(tenant="acme", document_id="d", content_type=PDF, text="%PDF-1.4")
    with pytest.raises(InvalidDocument):
        normalise(command, received_at=NOW)


def test_unknown_types_are_refused_before_the_body_is_read() -> None:
    command = IngestDocument(tenant="acme", document_id="d", content_type="application/zip", data_base64="%%")
    with pytest.raises(UnsupportedContentType):
        normalise(command, received_at=NOW)


def test_page_and_expansion_limits_bound_the_parse_time() -> None:
    pdf = (FIXTURES / "sample.pdf").read_bytes()
    command = IngestDocument(
        tenant="acme", document_id="d", content_type=PDF, data_base64=base64.b64encode(pdf).decode()
    )
    with pytest.raises(DocumentTooLarge):
        normalise(command, received_at=NOW, max_pages=1)
    assert len(normalise(command, received_at=NOW, max_pages=2).blocks) == 6
    with pytest.raises(DocumentTooLarge):
        partitioner.partition_docx((FIXTURES / "sample.docx").read_bytes(), max_xml_bytes=10_000)


def test_committed_binary_fixtures_match_their_generator() -> None:
    from tests.fixtures.documents.make_fixtures import make_docx

    assert (FIXTURES / "sample.pdf").read_bytes() == make_pdf()
    assert (FIXTURES / "sample.docx").read_bytes() == make_docx()


_NO_NETWORK_PROBE = """
import socket, subprocess, sys
calls = []
real_getaddrinfo, real_run = socket.getaddrinfo, subprocess.run
socket.getaddrinfo = lambda host, *a, **k: calls.append(host) or real_getaddrinfo(host, *a, **k)
subprocess.run = lambda cmd, *a, **k: calls.append(cmd) or real_run(cmd, *a, **k)
from services.ingest.formats import DOCX, PDF, parse_binary
for name, content_type in (("sample.docx", DOCX), ("sample.pdf", PDF)):
    blocks = parse_binary(open(sys.argv[1] + "/" + name, "rb").read(), media_type=content_type)
    assert len(blocks) == 6, blocks
print("calls:", calls)
"""


def test_parsing_looks_nothing_up_and_runs_no_program() -> None:
    # `import unstructured` alone resolves an analytics host and runs nvidia-smi; a fresh interpreter
    # without the opt-out variables shows that the adapter switches both off before the import.
    env = {k: v for k, v in os.environ.items() if k not in {"DO_NOT_TRACK", "SCARF_NO_ANALYTICS"}}
    done = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK_PROBE, str(FIXTURES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[3],
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "calls: []"
