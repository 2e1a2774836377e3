from __future__ import annotations

import math

import pytest

from headwater.bench.embed import run
from headwater.evaluation import mean_ndcg as ndcg_at_k
from services.embedder.adapters.fake import HashingBackend


def test_ndcg_matches_hand_computed_values() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"a": 1, "b": 2}}
    assert ndcg_at_k({"q1": ["a", "x"]}, {"q1": {"a": 1}}) == 1.0
    assert ndcg_at_k({"q1": ["x", "a"]}, {"q1": {"a": 1}}) == pytest.approx(1 / math.log2(3))
    ideal = 2 + 1 / math.log2(3)
    assert ndcg_at_k({"q1": [], "q2": ["a", "b"]}, qrels) == pytest.approx(
        (0 + (1 + 2 / math.log2(3)) / ideal) / 2
    )
    assert ndcg_at_k({"q1": ["x"] * 10 + ["a"]}, {"q1": {"a": 1}}, k=10) == 0.0


def test_run_reports_ratio_and_cosine_against_the_reference() -> None:
    lines: list[str] = []
    backends = {
        "ref": HashingBackend(dimension=32),
        "same": HashingBackend(dimension=32),
        "other": HashingBackend(),
    }
    figures = run(["alpha beta", "gamma"] * 10, backends=backends, rounds=1, echo=lines.append)
    assert figures["ref"]["ratio"] == 1.0
    assert figures["same"]["cos_min"] == pytest.approx(1.0)
    assert math.isnan(figures["other"]["cos_min"])
    assert len(lines) == 3
    assert all("chunks/s" in line for line in lines)
