"""DOCX and PDF: the elements `unstructured` finds in them, mapped to structural text blocks.

The mapping is pure; partitioning the bytes (a heavy, lazily imported library) is the adapter's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bs4 import BeautifulSoup
from bs4.element import Tag

from schemas import BlockKind, TextBlock
from services.ingest import partitioner
from services.ingest.parsing import clean_text, html_table_text

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = "application/pdf"
BINARY_CONTENT_TYPES = frozenset({DOCX, PDF})

# Parsing runs inside the intake request and grows with pages (about 55 ms of CPU for a page of dense
# text): the size limit alone would let a 10 MB file hold an intake worker for minutes. 200 pages take
# about 11 s; longer documents are sent in parts.
MAX_PDF_PAGES = 200
# A DOCX is a zip: 10 MB of it can expand to gigabytes of XML. About 0.5 s of CPU per MB of XML, so this
# bounds a DOCX like the page limit bounds a PDF (and python-docx holds all of it in memory).
MAX_DOCX_XML_BYTES = 24 * 1024 * 1024

_KINDS = {
    "ListItem": BlockKind.LIST_ITEM,
    "Table": BlockKind.TABLE,
    "CodeSnippet": BlockKind.CODE,
}
# Repeated on every page (running headers, footers, page numbers) or carrying no text: indexing them
# would put the same line into every chunk's neighbourhood.
_FURNITURE = frozenset({"Header", "Footer", "PageNumber", "PageBreak", "Image", "Picture", "Figure"})


class ElementMetadata(Protocol):
    """What the mapping reads of `unstructured.documents.elements.ElementMetadata`."""

    @property
    def category_depth(self) -> int | None: ...
    @property
    def page_number(self) -> int | None: ...
    @property
    def text_as_html(self) -> str | None: ...


class Element(Protocol):
    """What the mapping reads of `unstructured.documents.elements.Element`."""

    @property
    def category(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def metadata(self) -> ElementMetadata: ...


def parse_binary(data: bytes, *, media_type: str, max_pages: int = MAX_PDF_PAGES) -> list[TextBlock]:
    """Blocks of a DOCX or PDF file (`media_type` one of BINARY_CONTENT_TYPES)."""
    if media_type == DOCX:
        return blocks_from_elements(partitioner.partition_docx(data, max_xml_bytes=MAX_DOCX_XML_BYTES))
    if media_type == PDF:
        return blocks_from_elements(partitioner.partition_pdf(data, max_pages=max_pages))
    raise ValueError(f"not a binary document type: {media_type!r}")


def blocks_from_elements(elements: Iterable[Element]) -> list[TextBlock]:
    """Titles become headings (DOCX heading depth kept), tables one line per row, other text paragraphs;
    page furniture is dropped and each block keeps the page it came from."""
    blocks = []
    for element in elements:
        if element.category in _FURNITURE:
            continue
        page = element.metadata.page_number
        if element.category == "Title":
            text, kind = clean_text(element.text.replace("\n", " ")), BlockKind.HEADING
            level = min(6, (element.metadata.category_depth or 0) + 1)
        elif element.category == "Table":
            text, kind, level = _table_text(element), BlockKind.TABLE, 0
        else:
            kind = _KINDS.get(element.category, BlockKind.PARAGRAPH)
            raw = element.text if kind is BlockKind.CODE else element.text.replace("\n", " ")
            text, level = (raw.strip() if kind is BlockKind.CODE else clean_text(raw)), 0
        if text:
            blocks.append(
                TextBlock(kind=kind, text=text, level=level, page=page if page and page > 0 else None)
            )
    return blocks


def _table_text(element: Element) -> str:
    """Rows from the table's HTML when the parser kept its structure, else its flat text."""
    html = element.metadata.text_as_html
    if html:
        table = BeautifulSoup(html, "html.parser").find("table")
        if isinstance(table, Tag) and (text := html_table_text(table)):
            return text
    return clean_text(element.text)
