"""One rule-based sentence splitter for every stage: fast, aware of abbreviations, initials and
decimals, and treating a line break as a sentence end (blocks are joined by newlines)."""

from __future__ import annotations

import re

# A candidate end: terminal punctuation, closing quotes or brackets, whitespace, then a character
# that can start a sentence (a capital, a digit, or a pseudonym placeholder such as <PERSON_…>).
_END = re.compile(r"([.!?]+)([\"'”’)\]]*)(\s+)(?=[\"'“‘(\[]?[A-Z0-9<])")
_NEWLINES = re.compile(r"\n+")
# A period after these is not a sentence end.
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "al", "resp", "cf", "ca"),
        *("fig", "figs", "eq", "eqs", "ref", "refs", "no", "nos", "vol", "approx", "min", "max"),
        *("inc", "corp", "co", "ltd", "llc", "plc", "dept", "univ", "gen", "col", "lt", "sgt", "capt"),
        *("e.g", "i.e", "u.s", "u.k", "u.n", "e.u"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, without surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    for line_start, line_end in _lines(text):
        start = line_start
        for match in _END.finditer(text, line_start, line_end):
            if match.group(1) == "." and _is_abbreviation(text, start, match.start(1)):
                continue
            spans.append(_strip(text, start, match.end(2)))
            start = match.end(3)
        spans.append(_strip(text, start, line_end))
    return [(a, b) for a, b in spans if b > a]


def _lines(text: str) -> list[tuple[int, int]]:
    out, start = [], 0
    for match in _NEWLINES.finditer(text):
        out.append((start, match.start()))
        start = match.end()
    out.append((start, len(text)))
    return out


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    word_start = dot
    while word_start > sentence_start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lstrip("(\"'[“‘").casefold()
    if not word:
        return False
    # A known abbreviation, a single letter ("J. Smith") or dotted initials ("U.S.").
    return word in _ABBREVIATIONS or bool(re.fullmatch(r"[a-z]|(?:[a-z]\.)+[a-z]", word))


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
