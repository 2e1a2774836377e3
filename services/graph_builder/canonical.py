"""Canonical entity ids: label groups, surface-form normalisation and redaction placeholders."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from schemas import ChunkMention

# spaCy and Presidio label names → one group each; GPE/LOC/FAC flip-flop on the same place, so they merge.
LABEL_GROUPS: dict[str, str] = {
    "ORG": "org",
    "ORGANIZATION": "org",
    "GPE": "place",
    "LOC": "place",
    "LOCATION": "place",
    "FAC": "place",
    "PRODUCT": "product",
    "EVENT": "event",
    "WORK_OF_ART": "work",
    "LAW": "law",
    "NORP": "group",
    "NRP": "group",
    "PERSON": "person",
}
GROUPS: frozenset[str] = frozenset(LABEL_GROUPS.values())
# When one surface form gets several groups in a document, ties go to the earlier group here.
GROUP_PRIORITY: tuple[str, ...] = ("person", "org", "place", "product", "event", "work", "law", "group")

# Pseudonyms written by the redaction stage (`<PERSON_3f9a2c1b>`): stable per tenant, so they are entities.
PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*?)_([0-9a-f]{4,64})>")
PERSON_LABEL = "PERSON"

_MAX_SLUG_CHARS = 80
_POSSESSIVE = re.compile(r"['’]s$|(?<=s)['’]$")
_LEADING_THE = re.compile(r"^the\s+")
_ORG_SUFFIX = re.compile(
    r"\s+(?:inc|incorporated|corp|corporation|co|company|ltd|limited|llc|plc|gmbh|ag|sa|nv|bv|lp|llp)$"
)
_DOTTED = re.compile(r"(?<=\w)\.(?=\w)")
_NON_WORD = re.compile(r"[\W_]+")
_EDGE_CHARS = " \"'“”‘’()[]{},;:!?"
_DISPLAY_THE = re.compile(r"^the\s+", re.IGNORECASE)


def label_group(label: str) -> str | None:
    """Group of an NER label, or None for labels the graph ignores (dates, numbers, PII types)."""
    return LABEL_GROUPS.get(label.upper())


def slugify(surface: str, *, group: str) -> str:
    """Normalised surface form: folded, without possessive, leading "the", punctuation or legal suffix."""
    placeholder = PLACEHOLDER.fullmatch(surface.strip())
    if placeholder:
        return placeholder.group(2)
    text = unicodedata.normalize("NFKD", surface)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold().strip()
    text = _POSSESSIVE.sub("", text)
    text = _DOTTED.sub("", text)  # "u.s." and "us" are one name
    text = " ".join(_NON_WORD.sub(" ", text.replace("&", " and ")).split())
    text = _LEADING_THE.sub("", text)
    if group == "org":
        stripped = _ORG_SUFFIX.sub("", text)
        text = stripped or text
    return text.replace(" ", "-")[:_MAX_SLUG_CHARS].strip("-")


def entity_id(*, group: str, slug: str) -> str:
    return f"{group}:{slug}"


def display_name(surface: str) -> str:
    """Surface form as shown to people: trimmed, without a leading "the" or a possessive."""
    text = " ".join(surface.split())
    if PLACEHOLDER.fullmatch(text):
        return text
    return _DISPLAY_THE.sub("", _POSSESSIVE.sub("", text.strip(_EDGE_CHARS))).strip(_EDGE_CHARS)


def placeholder_mentions(text: str) -> list[ChunkMention]:
    """PERSON mentions for every person pseudonym in `text`."""
    return [
        ChunkMention(label=PERSON_LABEL, text=m.group(0), start=m.start(), end=m.end())
        for m in PLACEHOLDER.finditer(text)
        if m.group(1) == PERSON_LABEL
    ]


def with_placeholders(text: str, mentions: Iterable[ChunkMention]) -> list[ChunkMention]:
    """Mentions plus person pseudonyms; NER hits overlapping any pseudonym are dropped as noise."""
    spans = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    kept = [m for m in mentions if not any(m.start < end and start < m.end for start, end in spans)]
    return sorted([*kept, *placeholder_mentions(text)], key=lambda m: (m.start, m.end))


def query_slugs(name: str) -> list[tuple[str | None, str]]:
    """(group or None, slug) pairs a lookup by name or id should match."""
    head, sep, tail = name.partition(":")
    if sep and head in GROUPS and tail:
        return [(head, tail)]
    slugs = {slugify(name, group="org"), slugify(name, group="place")}
    return [(None, s) for s in sorted(slugs) if s]


def group_of(mention: ChunkMention) -> str | None:
    """Group of a mention; a pseudonym is a person whatever the upstream label said."""
    if PLACEHOLDER.fullmatch(mention.text.strip()):
        return "person" if mention.text.strip().startswith(f"<{PERSON_LABEL}_") else None
    return label_group(mention.label)


def pick_group(counts: Sequence[tuple[str, int]]) -> str:
    """The group with the most mentions; ties go by `GROUP_PRIORITY`."""
    return min(counts, key=lambda gc: (-gc[1], GROUP_PRIORITY.index(gc[0])))[0]
