"""The int8 ONNX export against the fp32 reference (export once per module into a temp cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.embedder.adapters.local import SentenceTransformerBackend
from services.embedder.adapters.onnx import OnnxBackend

pytestmark = pytest.mark.slow

SENTENCES = [
    "Aspirin reduces the risk of heart attack.",
    "IL-6 is a pro-inflammatory cytokine produced by macrophages.",
    "The football match ended in a draw after extra time.",
    "Short.",
    " ".join(["Long inputs are truncated to the model's maximum sequence length."] * 40),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx(cache_dir: Path) -> OnnxBackend:
    return OnnxBackend(cache_dir=cache_dir, batch_size=2)


def test_int8_is_close_to_fp32(onnx: OnnxBackend) -> None:
    reference = SentenceTransformerBackend(device="cpu").embed(SENTENCES)
    rows = onnx.embed(SENTENCES)
    assert rows.shape == (len(SENTENCES), 384)
    assert rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(rows * reference, axis=1)
    assert cosines.min() >= 0.98, cosines
    assert onnx.model_id == "all-MiniLM-L6-v2+onnx-int8"  # never shares cache entries with fp32


def test_order_is_kept_despite_length_sorting(onnx: OnnxBackend) -> None:
    forward = onnx.embed(SENTENCES)
    backward = onnx.embed(SENTENCES[::-1])
    assert np.allclose(forward, backward[::-1], atol=1e-5)
    assert onnx.embed([]).shape == (0, 384)


def test_export_is_reused_and_leaves_no_temporary_files(onnx: OnnxBackend, cache_dir: Path) -> None:
    stamp = onnx.model_path.stat().st_mtime_ns
    again = OnnxBackend(cache_dir=cache_dir)
    assert again.model_path == onnx.model_path
    assert again.model_path.stat().st_mtime_ns == stamp
    assert [p.name for p in onnx.model_path.parent.iterdir()] == ["model-int8.onnx"]
