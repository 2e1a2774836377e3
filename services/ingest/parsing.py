"""Turn document bytes into structural text blocks: plain text, Markdown and HTML."""

from __future__ import annotations

import re
from collections.abc import Callable

from bs4 import BeautifulSoup
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from schemas import BlockKind, TextBlock
from services.ingest.errors import UnsupportedContentType

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_WS = re.compile(r"[ \t\r\f\v]+")


def clean_text(text: str) -> str:
    """Runs of spaces and tabs collapsed to one space, ends trimmed (newlines kept)."""
    return _WS.sub(" ", text).strip()


def html_table_text(table: Tag) -> str:
    """One line per row, cells joined by " | ", so the chunker can cut between rows, never inside one."""
    rows = [
        " | ".join(clean_text(cell.get_text(" ")) for cell in row.find_all(["th", "td"]))
        for row in table.find_all("tr")
    ]
    return "\n".join(r for r in rows if r.strip(" |"))


def parse_plain_text(text: str) -> list[TextBlock]:
    """Paragraphs are separated by blank lines; single newlines are soft wraps."""
    blocks = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        cleaned = clean_text(paragraph.replace("\n", " "))
        if cleaned:
            blocks.append(TextBlock(kind=BlockKind.PARAGRAPH, text=cleaned))
    return blocks


def parse_markdown(text: str) -> list[TextBlock]:
    """ATX and setext headings, lists, fenced code and pipe tables; everything else is a paragraph."""
    blocks: list[TextBlock] = []
    paragraph: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")

    def flush() -> None:
        if paragraph:
            cleaned = clean_text(" ".join(paragraph))
            if cleaned:
                blocks.append(TextBlock(kind=BlockKind.PARAGRAPH, text=cleaned))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush()
            fence = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            if "\n".join(body).strip():
                blocks.append(TextBlock(kind=BlockKind.CODE, text="\n".join(body).strip()))
        elif heading := _HEADING.match(line):
            flush()
            blocks.append(
                TextBlock(
                    kind=BlockKind.HEADING, text=clean_text(heading.group(2)), level=len(heading.group(1))
                )
            )
        elif paragraph and _SETEXT.match(line) and len(paragraph) == 1:
            level = 1 if line.strip().startswith("=") else 2
            title = paragraph.pop()
            blocks.append(TextBlock(kind=BlockKind.HEADING, text=clean_text(title), level=level))
        elif _TABLE_ROW.match(line):
            flush()
            rows = []
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(" | ".join(cells))
                i += 1
            blocks.append(TextBlock(kind=BlockKind.TABLE, text="\n".join(rows)))
            continue
        elif item := _LIST_ITEM.match(line):
            flush()
            blocks.append(TextBlock(kind=BlockKind.LIST_ITEM, text=clean_text(item.group(1))))
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
        i += 1
    flush()
    return [b for b in blocks if b.text]


_BLOCK_TAGS = {"p", "div", "section", "article", "blockquote", "main", "header", "footer", "aside", "body"}
# Strings of the markup that are not page text: `<!DOCTYPE html>`, `<!-- comments -->`, `<?xml ...?>`.
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "svg", "nav"}


def parse_html(html: str) -> list[TextBlock]:
    """Headings, paragraphs, list items, tables and preformatted text, in document order."""
    soup = BeautifulSoup(html, "html.parser")
    blocks: list[TextBlock] = []
    title = soup.find("title")
    if title and clean_text(title.get_text()):
        blocks.append(TextBlock(kind=BlockKind.TITLE, text=clean_text(title.get_text())))
        title.decompose()
    for tag in soup.find_all(_SKIP_TAGS):
        tag.decompose()

    def walk(node: Tag) -> None:
        inline: list[str] = []

        def flush() -> None:
            text = clean_text("".join(inline))
            if text:
                blocks.append(TextBlock(kind=BlockKind.PARAGRAPH, text=text))
            inline.clear()

        for child in node.children:
            if isinstance(child, _NOT_TEXT):
                continue
            if isinstance(child, NavigableString):
                inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if re.fullmatch(r"h[1-6]", name):
                flush()
                blocks.append(
                    TextBlock(
                        kind=BlockKind.HEADING, text=clean_text(child.get_text(" ")), level=int(name[1])
                    )
                )
            elif name == "li":
                flush()
                blocks.append(TextBlock(kind=BlockKind.LIST_ITEM, text=clean_text(child.get_text(" "))))
            elif name == "table":
                flush()
                blocks.append(TextBlock(kind=BlockKind.TABLE, text=html_table_text(child)))
            elif name == "pre":
                flush()
                blocks.append(TextBlock(kind=BlockKind.CODE, text=child.get_text().strip()))
            elif name in _BLOCK_TAGS or name in {"ul", "ol", "dl", "html", "figure", "form"}:
                flush()
                walk(child)
            elif name == "br":
                inline.append(" ")
            else:
                inline.append(child.get_text())
        flush()

    walk(soup)
    return [b for b in blocks if b.text]


PARSERS: dict[str, Callable[[str], list[TextBlock]]] = {
    "text/plain": parse_plain_text,
    "text/markdown": parse_markdown,
    "text/x-markdown": parse_markdown,
    "text/html": parse_html,
    "application/xhtml+xml": parse_html,
}


def media_type_of(content_type: str) -> str:
    """`text/HTML; charset=utf-8` → `text/html`."""
    return content_type.split(";")[0].strip().lower()


def parse(text: str, *, content_type: str) -> list[TextBlock]:
    """Blocks of a document of `content_type` (parameters such as charset are ignored)."""
    media_type = media_type_of(content_type)
    parser = PARSERS.get(media_type)
    if parser is None:
        raise UnsupportedContentType(
            f"no parser for content type {media_type!r}; supported: {sorted(PARSERS)}"
        )
    return parser(text)
