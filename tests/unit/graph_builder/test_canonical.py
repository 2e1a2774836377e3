"""Canonical entity ids: normalisation, label groups and pseudonyms."""

from __future__ import annotations

import pytest

from schemas import ChunkMention
from services.graph_builder import canonical


@pytest.mark.parametrize(
    ("surface", "group", "slug"),
    [
        ("Acme Corp.", "org", "acme"),
        ("the ACME corporation", "org", "acme"),
        ("Acme's", "org", "acme"),
        ("Acme Ltd", "place", "acme-ltd"),  # legal suffixes are stripped for organisations only
        ("U.S.", "place", "us"),
        ("US", "place", "us"),
        ("Zürich", "place", "zurich"),
        ("  New   York  ", "place", "new-york"),
        ("AT&T", "org", "at-and-t"),
        ("The Hague", "place", "hague"),
        ("Co", "org", "co"),  # a suffix alone is still a name
        ("<PERSON_3f9a2c1b>", "person", "3f9a2c1b"),
        ("!!!", "org", ""),
    ],
)
def test_slugify(surface: str, group: str, slug: str) -> None:
    assert canonical.slugify(surface, group=group) == slug


@pytest.mark.parametrize(
    ("label", "group"),
    [
        ("GPE", "place"),
        ("LOC", "place"),
        ("FAC", "place"),
        ("ORG", "org"),
        ("ORGANIZATION", "org"),
        ("NORP", "group"),
        ("WORK_OF_ART", "work"),
        ("DATE", None),
        ("CARDINAL", None),
        ("EMAIL_ADDRESS", None),
    ],
)
def test_label_groups(label: str, group: str | None) -> None:
    assert canonical.label_group(label) == group


def test_display_name_drops_leading_the_and_possessive() -> None:
    assert canonical.display_name("the United Nations'") == "United Nations"
    assert canonical.display_name("Acme's") == "Acme"
    assert canonical.display_name("<PERSON_3f9a2c1b>") == "<PERSON_3f9a2c1b>"


def test_pseudonyms_become_person_mentions_and_hide_overlapping_ner_noise() -> None:
    text = "Call <PERSON_3f9a2c1b> at <PHONE_NUMBER_0a1b2c3d> about Acme."
    noise = ChunkMention(label="ORG", text="PERSON_3f9a2c1b", start=6, end=21)
    phone = ChunkMention(label="ORG", text="PHONE_NUMBER_0a1b2c3d", start=27, end=48)
    acme = ChunkMention(label="ORG", text="Acme", start=56, end=60)

    merged = canonical.with_placeholders(text, [noise, phone, acme])

    assert [(m.label, m.text) for m in merged] == [("PERSON", "<PERSON_3f9a2c1b>"), ("ORG", "Acme")]
    assert canonical.with_placeholders(text, merged) == merged  # idempotent: upstream may have added them


def test_query_slugs_accept_ids_and_names() -> None:
    assert canonical.query_slugs("org:acme") == [("org", "acme")]
    assert canonical.query_slugs("The Acme Inc.") == [(None, "acme"), (None, "acme-inc")]
    assert canonical.query_slugs("unknown:thing") == [(None, "unknown-thing")]
