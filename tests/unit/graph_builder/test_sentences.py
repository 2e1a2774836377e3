"""The rule-based sentence splitter and typed-relation patterns."""

from __future__ import annotations

import itertools

import pytest

from services.graph_builder.sentences import split_sentences, typed_relation


def _split(text: str) -> list[str]:
    return [text[a:b].strip() for a, b in split_sentences(text)]


def test_splits_on_terminal_punctuation_and_line_breaks() -> None:
    text = "Acme grew. Did Beta? Yes! Gamma (the firm) left.\nHeading line\n\nNext block"
    assert _split(text) == [
        "Acme grew.",
        "Did Beta?",
        "Yes!",
        "Gamma (the firm) left.",
        "Heading line",
        "Next block",
    ]


def test_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Dr. Smith met J. Doe at Acme Inc. in St. Louis. The U.S. Army agreed. Then e.g. Beta."
    assert _split(text) == [
        "Dr. Smith met J. Doe at Acme Inc. in St. Louis.",
        "The U.S. Army agreed.",
        "Then e.g. Beta.",
    ]


def test_spans_cover_the_text_without_overlap() -> None:
    text = "One. Two? Three!  Four"
    spans = split_sentences(text)
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(spans))
    assert text[spans[0][0] :].startswith("One")
    assert spans[-1][1] == len(text)


def test_lowercase_after_a_period_is_not_a_new_sentence() -> None:
    assert _split("It cost 3.5 million vs. the plan. ok then") == [
        "It cost 3.5 million vs. the plan. ok then"
    ]


@pytest.mark.parametrize(
    ("between", "expected"),
    [
        (" acquired ", ("acquired", False)),
        (" was acquired by ", ("acquired", True)),
        (", which is headquartered in ", ("located_in", False)),
        (" partnered with ", ("partnered_with", False)),
        (", CEO of ", ("leads", False)),
        (" and ", None),
        (" (which acquired nothing) and ", None),
    ],
)
def test_typed_relation(between: str, expected: tuple[str, bool] | None) -> None:
    assert typed_relation(between) == expected
