"""The spaCy recognizer on the offline model: labels kept, values dropped, pseudonyms read as persons."""

from __future__ import annotations

import pytest

from services.graph_builder.adapters.spacy_ner import SpacyEntityRecognizer
from services.graph_builder.errors import RecognizerUnavailable


@pytest.fixture(scope="module")
def recognizer() -> SpacyEntityRecognizer:
    return SpacyEntityRecognizer(batch_size=2)


@pytest.mark.slow  # loading the model takes 5-7 s on two shared cores
def test_only_the_ner_pipe_is_loaded(recognizer: SpacyEntityRecognizer) -> None:
    assert recognizer.pipe_names == ["ner"]


@pytest.mark.slow
def test_recognizes_entities_and_pseudonyms(recognizer: SpacyEntityRecognizer) -> None:
    texts = [
        "Microsoft opened a new office in Berlin on Monday for $5 million.",
        "<PERSON_3f9a2c1b> met the United Nations delegation in Paris in 2021.",
        "",
        "nothing to see here",
    ]

    found = recognizer.recognize_batch(texts)

    assert len(found) == 4
    first = {(m.label, m.text) for m in found[0]}
    assert {("ORG", "Microsoft"), ("GPE", "Berlin")} <= first
    assert not {label for label, _ in first} & {"DATE", "MONEY", "CARDINAL"}
    second = {(m.label, m.text) for m in found[1]}
    assert ("PERSON", "<PERSON_3f9a2c1b>") in second
    assert ("GPE", "Paris") in second
    assert not any("3f9a2c1b" in text for label, text in second if label != "PERSON")
    assert found[2] == []
    assert found[3] == []
    for text, mentions in zip(texts, found, strict=True):
        assert all(text[m.start : m.end] == m.text for m in mentions)


def test_a_missing_model_is_reported_as_unavailable() -> None:
    with pytest.raises(RecognizerUnavailable):
        SpacyEntityRecognizer(model="no_such_spacy_model_here")
