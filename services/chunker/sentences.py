"""A fast rule-based sentence splitter that knows common abbreviations, initials and decimals."""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "al", "resp"),
        *("fig", "figs", "eq", "eqs", "ref", "refs", "no", "nos", "vol", "approx", "ca", "cf", "min", "max"),
        *("dept", "inc", "ltd", "co", "corp", "u.s", "u.k"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace, then a
# character that can start a sentence.
_BOUNDARY = re.compile(r"([.!?]+)([\"')\]]*)(\s+)(?=[\"'(\[]?[A-Z0-9<])")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, covering it without the separating whitespace."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(2)
        if match.group(1) == "." and _is_abbreviation(text, match.start(1)):
            continue
        if text[start:end].strip():
            spans.append(_strip(text, start, end))
        start = match.end(3)
    if text[start:].strip():
        spans.append(_strip(text, start, len(text)))
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    word_start = dot
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lower().lstrip("(\"'[")
    if not word:
        return False
    if word in _ABBREVIATIONS:
        return True
    # A single letter ("J. Smith") or dotted initials ("U.S.") rarely end a sentence.
    return bool(re.fullmatch(r"[a-z]|(?:[a-z]\.)+[a-z]", word))


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
