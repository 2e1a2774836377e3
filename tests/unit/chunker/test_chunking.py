"""Semantic chunking: size bounds, similarity boundaries, headings, overlap, deterministic ids."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import BlockKind, ChangeOp, EntityMention, TextBlock
from services.chunker.config import ChunkerSettings
from services.chunker.logic import chunk_document
from tests.builders import document_redacted, para


def words(texts: list[str]) -> list[int]:
    """A stand-in tokenizer: one token per word, so sizes in tests are easy to reason about."""
    return [len(t.split()) for t in texts]


def sentence(topic: str, n: int) -> str:
    return " ".join([topic.capitalize()] + [topic] * (n - 2)) + " end."


SETTINGS = ChunkerSettings(max_tokens=42, min_tokens=8, overlap_tokens=0)


def test_a_short_document_is_one_chunk_and_a_delete_has_none() -> None:
    result = chunk_document(
        document_redacted(para("Short text. Two sentences.")), settings=SETTINGS, count_tokens=words
    )
    assert [c.text for c in result.chunks] == ["Short text. Two sentences."]
    deleted = chunk_document(document_redacted(op=ChangeOp.DELETE), settings=SETTINGS, count_tokens=words)
    assert deleted.op is ChangeOp.DELETE and deleted.chunks == []


def test_no_chunk_exceeds_the_budget() -> None:
    text = " ".join(sentence(f"w{i}", 7) for i in range(30))
    result = chunk_document(document_redacted(para(text)), settings=SETTINGS, count_tokens=words)
    assert len(result.chunks) > 1
    assert all(c.token_count <= SETTINGS.max_tokens - 2 for c in result.chunks)
    assert " ".join(c.text for c in result.chunks).split() == text.split()


def test_boundary_falls_where_neighbour_similarity_drops() -> None:
    cats = [sentence("cat", 8) for _ in range(3)]
    cars = [sentence("car", 8) for _ in range(3)]

    def encode(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if t.startswith("Cat") else [0.0, 1.0] for t in texts])

    result = chunk_document(
        document_redacted(para(" ".join(cats + cars))), settings=SETTINGS, count_tokens=words, encode=encode
    )
    assert [c.text for c in result.chunks] == [" ".join(cats), " ".join(cars)]


def test_without_a_drop_the_split_is_by_size() -> None:
    same = [sentence("cat", 8) for _ in range(6)]
    result = chunk_document(
        document_redacted(para(" ".join(same))),
        settings=SETTINGS,
        count_tokens=words,
        encode=lambda t: np.ones((len(t), 2)) / np.sqrt(2),
    )
    assert len(result.chunks) == 2


def test_heading_paths_and_prefix_on_continuation_chunks() -> None:
    blocks = [
        TextBlock(kind=BlockKind.TITLE, text="Handbook"),
        TextBlock(kind=BlockKind.HEADING, text="Refunds", level=1),
        para(" ".join(sentence(f"r{i}", 9) for i in range(8))),
        TextBlock(kind=BlockKind.HEADING, text="Shipping", level=1),
        para(sentence("ship", 9)),
    ]
    result = chunk_document(document_redacted(*blocks), settings=SETTINGS, count_tokens=words)
    # The title alone is too small for a chunk: it folds into the first section and keeps its path.
    assert result.chunks[0].headings == ["Handbook", "Refunds"]
    assert result.chunks[0].text.startswith("Handbook\nRefunds\n")
    continuation = result.chunks[1]
    assert continuation.headings == ["Handbook", "Refunds"]
    assert continuation.text.startswith("Handbook › Refunds\n")
    assert result.chunks[-1].headings[-1] == "Shipping"


def test_small_sections_merge_up_to_the_budget() -> None:
    blocks = []
    for i in range(4):
        blocks += [TextBlock(kind=BlockKind.HEADING, text=f"H{i}", level=2), para("tiny body.")]
    result = chunk_document(document_redacted(*blocks), settings=SETTINGS, count_tokens=words)
    assert len(result.chunks) == 1
    assert result.chunks[0].headings == []


def test_overlap_repeats_trailing_sentences_within_a_section() -> None:
    sentences = [sentence(f"s{i}", 6) for i in range(12)]
    settings = ChunkerSettings(max_tokens=42, min_tokens=8, overlap_tokens=12)
    result = chunk_document(
        document_redacted(para(" ".join(sentences))), settings=settings, count_tokens=words
    )
    first, second = result.chunks[0].text, result.chunks[1].text
    # The second chunk opens with the first chunk's last two sentences (12 tokens of overlap).
    assert second.startswith(". ".join(first.split(". ")[-2:]))
    assert not second.startswith(". ".join(first.split(". ")[-3:]))
    assert all(c.token_count <= 40 for c in result.chunks)


def test_ids_are_deterministic_and_change_with_content() -> None:
    a = chunk_document(document_redacted(para("Alpha beta. Gamma.")), settings=SETTINGS, count_tokens=words)
    b = chunk_document(document_redacted(para("Alpha beta. Gamma.")), settings=SETTINGS, count_tokens=words)
    c = chunk_document(document_redacted(para("Alpha beta. Delta.")), settings=SETTINGS, count_tokens=words)
    assert a.chunks[0].chunk_id == b.chunks[0].chunk_id != c.chunks[0].chunk_id
    assert a.chunks[0].content_hash == b.chunks[0].content_hash


def test_mentions_are_mapped_to_chunk_offsets() -> None:
    text = "We met Acme Corp in Paris. Nothing else."
    mentions = [
        EntityMention(block=0, start=7, end=16, label="ORG", text="Acme Corp"),
        EntityMention(block=0, start=20, end=25, label="GPE", text="Paris"),
    ]
    result = chunk_document(
        document_redacted(para(text), mentions=mentions), settings=SETTINGS, count_tokens=words
    )
    chunk = result.chunks[0]
    assert chunk.mentions is not None
    assert [chunk.text[m.start : m.end] for m in chunk.mentions] == ["Acme Corp", "Paris"]
    no_ner = chunk_document(document_redacted(para(text)), settings=SETTINGS, count_tokens=words)
    assert no_ner.chunks[0].mentions is None


def test_a_run_on_sentence_longer_than_the_budget_is_cut_at_words() -> None:
    result = chunk_document(
        document_redacted(para(" ".join(["word"] * 100))), settings=SETTINGS, count_tokens=words
    )
    assert all(c.token_count <= 40 for c in result.chunks)
    assert sum(len(c.text.split()) for c in result.chunks) == 100


def test_settings_refuse_inconsistent_bounds() -> None:
    with pytest.raises(ValueError, match="min_tokens"):
        ChunkerSettings(max_tokens=50, min_tokens=60)


def test_only_sentences_beside_candidate_cuts_are_embedded() -> None:
    encoded: list[str] = []

    def encode(texts: list[str]) -> np.ndarray:
        encoded.extend(texts)
        return np.ones((len(texts), 2)) / np.sqrt(2)

    text = " ".join(sentence(f"w{i}", 5) for i in range(12))  # 60 tokens against a budget of 40
    result = chunk_document(
        document_redacted(para(text)), settings=SETTINGS, count_tokens=words, encode=encode
    )
    assert len(result.chunks) == 2
    assert 0 < len(encoded) < 12
