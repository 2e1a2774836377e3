"""Verb patterns that type a relation between two entities of one sentence."""

from __future__ import annotations

import re

from headwater.kernel.sentences import split_sentences

__all__ = ["split_sentences", "typed_relation"]


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
