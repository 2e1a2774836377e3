from __future__ import annotations

from headwater.kernel.sentences import split_sentences


def _split(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_splits_on_terminal_punctuation() -> None:
    assert _split("One here. Two there! Three? Four.") == ["One here.", "Two there!", "Three?", "Four."]


def test_keeps_abbreviations_initials_and_decimals_inside_sentences() -> None:
    text = "Dr. Smith met J. R. Tolkien at 3.5 p.m. in the U.S. office. Results (e.g. Fig. 2) improved. Done."
    assert _split(text) == [
        "Dr. Smith met J. R. Tolkien at 3.5 p.m. in the U.S. office.",
        "Results (e.g. Fig. 2) improved.",
        "Done.",
    ]


def test_spans_cover_the_text_without_outer_whitespace() -> None:
    text = "  Alpha beta.   Gamma delta.  "
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["Alpha beta.", "Gamma delta."]


def test_no_split_before_lowercase_continuation() -> None:
    assert _split("It costs approx. five dollars. ok then") == ["It costs approx. five dollars. ok then"]


def test_a_line_break_ends_a_sentence() -> None:
    assert _split("Agenda\nBudget review. Hiring plan") == ["Agenda", "Budget review.", "Hiring plan"]


def test_a_pseudonym_can_start_a_sentence() -> None:
    assert _split("We called twice. <PERSON_1a2b3c4d> answered.") == [
        "We called twice.",
        "<PERSON_1a2b3c4d> answered.",
    ]
