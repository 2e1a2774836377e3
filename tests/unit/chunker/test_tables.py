"""Tables and code in chunks: a boundary falls between rows (or lines), never inside one that fits,
and each row keeps its own line in the chunk text."""

from __future__ import annotations

from schemas import BlockKind, TextBlock
from services.chunker.config import ChunkerSettings
from services.chunker.logic import chunk_document
from tests.builders import document_redacted
from tests.unit.chunker.test_chunking import words

SETTINGS = ChunkerSettings(max_tokens=42, min_tokens=8, overlap_tokens=0)


def _rows(n: int) -> list[str]:
    return [f"part {i} | bin {i} | count {i * 3}" for i in range(n)]  # 8 words a row


def test_a_long_table_is_cut_between_rows_and_keeps_one_row_a_line() -> None:
    rows = _rows(20)
    table = TextBlock(kind=BlockKind.TABLE, text="\n".join(rows))

    chunks = chunk_document(document_redacted(table), settings=SETTINGS, count_tokens=words).chunks

    assert len(chunks) > 1
    assert [line for chunk in chunks for line in chunk.text.split("\n")] == rows  # whole, once, in order
    assert all(chunk.token_count <= SETTINGS.max_tokens - 2 for chunk in chunks)


def test_code_keeps_its_lines_and_prose_stays_joined() -> None:
    code = TextBlock(kind=BlockKind.CODE, text="x = read()\n\n    y = x * 2\nsave(y)")
    prose = TextBlock(kind=BlockKind.PARAGRAPH, text="First sentence here. Second one follows.")

    (chunk,) = chunk_document(document_redacted(prose, code), settings=SETTINGS, count_tokens=words).chunks

    assert chunk.text == "First sentence here. Second one follows.\nx = read()\n    y = x * 2\nsave(y)"


def test_a_row_longer_than_a_chunk_is_cut_at_words_and_loses_nothing() -> None:
    long_row = " | ".join(f"cell{i}" for i in range(60))  # 119 words: more than one chunk holds
    table = TextBlock(kind=BlockKind.TABLE, text=f"head | er\n{long_row}")

    chunks = chunk_document(document_redacted(table), settings=SETTINGS, count_tokens=words).chunks

    assert " ".join(chunk.text for chunk in chunks).split() == f"head | er {long_row}".split()
    assert all(chunk.token_count <= SETTINGS.max_tokens - 2 for chunk in chunks)
