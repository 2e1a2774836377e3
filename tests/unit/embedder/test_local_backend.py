"""The real all-MiniLM-L6-v2 in fp32 (loaded once for the module)."""

from __future__ import annotations

import numpy as np
import pytest

from services.embedder.adapters.local import SentenceTransformerBackend

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend() -> SentenceTransformerBackend:
    return SentenceTransformerBackend(device="cpu", batch_size=8)


def test_shape_dtype_and_unit_norm(backend: SentenceTransformerBackend) -> None:
    rows = backend.embed(["A short sentence.", "Interleukin-6 drives the acute phase response.", ""])
    assert rows.shape == (3, 384)
    assert rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert (backend.model_id, backend.dimension, backend.max_input_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    assert backend.embed([]).shape == (0, 384)


def test_identical_text_gives_an_identical_vector_whatever_the_batch(
    backend: SentenceTransformerBackend,
) -> None:
    alone = backend.embed(["The cat sat on the mat."])[0]
    batched = backend.embed(["Something else entirely, and longer.", "The cat sat on the mat."])[1]
    assert np.allclose(alone, batched, atol=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones(backend: SentenceTransformerBackend) -> None:
    a, b, c = backend.embed(
        [
            "Aspirin reduces the risk of heart attack.",
            "Taking aspirin lowers myocardial infarction risk.",
            "The football match ended in a draw.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3
