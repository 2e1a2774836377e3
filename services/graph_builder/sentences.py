"""A cheap rule-based sentence splitter and verb patterns that type a relation between two entities."""

from __future__ import annotations

import re

# A candidate end: terminal punctuation, closing quotes or brackets, space, then a likely sentence start.
_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9<])")
_NEWLINES = re.compile(r"\n+")
_LAST_WORD = re.compile(r"(\S+)$")
# A period after these is not a sentence end.
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "no", "fig", "figs", "al"),
        *(
            "inc",
            "corp",
            "co",
            "ltd",
            "llc",
            "plc",
            "dept",
            "univ",
            "approx",
            "gen",
            "col",
            "lt",
            "sgt",
            "capt",
        ),
        *("e.g", "i.e", "u.s", "u.k", "u.n", "e.u"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`; every line break also ends a sentence."""
    spans: list[tuple[int, int]] = []
    for line in _lines(text):
        start = line[0]
        for m in _END.finditer(text, line[0], line[1]):
            word = _LAST_WORD.search(text, start, m.start() + 1)
            token = word.group(1).rstrip(".!?").lstrip("\"'“‘([").casefold() if word else ""
            if text[m.start()] == "." and (token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())):
                continue  # "Dr. Smith", "J. Doe": an abbreviation or an initial, not an end
            spans.append((start, m.end()))
            start = m.end()
        if start < line[1]:
            spans.append((start, line[1]))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _lines(text: str) -> list[tuple[int, int]]:
    out, start = [], 0
    for m in _NEWLINES.finditer(text):
        out.append((start, m.start()))
        start = m.end()
    out.append((start, len(text)))
    return out


# (pattern over the folded text between two entities, relation, whether the object comes first)
_PATTERNS: tuple[tuple[re.Pattern[str], str, bool], ...] = tuple(
    (re.compile(p), rel, passive)
    for p, rel, passive in (
        (r"\b(?:was|were|been|being|is|are)\s+(?:acquired|bought|purchased)\s+by\b", "acquired", True),
        (
            r"\b(?:acquired|acquires|acquiring|bought|buys|purchased|purchases|took over|takes over)\b",
            "acquired",
            False,
        ),
        (r"\b(?:was|were|is|are)\s+(?:founded|established|created)\s+by\b", "founded", True),
        (r"\b(?:founded|co-?founded|established)\b", "founded", False),
        (r"\b(?:is|are|was|were)\s+owned\s+by\b", "owns", True),
        (r"\b(?:owns|owned)\b", "owns", False),
        (r"\b(?:subsidiary|division|unit)\s+of\b", "subsidiary_of", False),
        (
            r"\b(?:ceo|chief executive|president|chair(?:man|woman)?|director|head|founder)\s+of\b",
            "leads",
            False,
        ),
        (r"\b(?:leads|led|heads|headed|runs|ran)\b", "leads", False),
        (r"\b(?:works? (?:for|at)|worked (?:for|at)|joined|employed by)\b", "works_for", False),
        (r"\b(?:headquartered|based|located|situated)\s+in\b", "located_in", False),
        (
            r"\b(?:partnered|partners|partnering|collaborated|collaborates|teamed up|allied)\s+with\b",
            "partnered_with",
            False,
        ),
        (r"\b(?:compete[sd]?|competing)\s+with\b", "competes_with", False),
        (r"\b(?:invested|invests|investing)\s+in\b", "invested_in", False),
        (r"\b(?:sued|sues|suing)\b", "sued", False),
        (r"\b(?:supplies|supplied|supplying)\b", "supplies", False),
        (r"\b(?:member|members|part)\s+of\b", "part_of", False),
        (r"\b(?:visited|visits|visiting)\b", "visited", False),
        (r"\b(?:signed|signs)\b", "signed", False),
    )
)
_CLAUSE_BREAK = re.compile(r"[;:()\[\]]")


def typed_relation(between: str) -> tuple[str, bool] | None:
    """(relation, object first) for the text between two adjacent entities, or None."""
    folded = between.casefold()
    if _CLAUSE_BREAK.search(folded):
        return None  # a clause break usually means the verb belongs to someone else
    for pattern, relation, passive in _PATTERNS:
        if pattern.search(folded):
            return relation, passive
    return None
