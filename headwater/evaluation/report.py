"""The evaluation table in Markdown, written between markers of a document such as the README."""

from __future__ import annotations

from collections.abc import Sequence

TABLE_START, TABLE_END = "<!-- eval-table -->", "<!-- /eval-table -->"


def markdown_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> list[str]:
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def replace_table(document: str, block: str) -> str:
    """The document with everything between the eval-table markers replaced by `block`."""
    start, end = document.find(TABLE_START), document.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"no {TABLE_START} … {TABLE_END} markers to write the table between")
    return document[: start + len(TABLE_START)] + "\n" + block.strip("\n") + "\n" + document[end:]
