"""`headwater eval`'s pure parts: mode names, metrics, the README table between its markers."""

from __future__ import annotations

import pytest

from headwater.evaluation import (
    TABLE_END,
    TABLE_START,
    EvalMode,
    markdown_table,
    ndcg_at,
    parse_mode,
    recall_at,
    replace_table,
)
from schemas import Fusion, SearchMode


def test_mode_names_spell_the_retrieval_setup() -> None:
    assert parse_mode("hybrid") == EvalMode("hybrid", SearchMode.HYBRID, Fusion.DBSF)
    assert parse_mode("hybrid-rrf+graph") == EvalMode(
        "hybrid-rrf+graph", SearchMode.HYBRID, Fusion.RRF, graph=True
    )
    assert parse_mode("dense+graph+rerank") == EvalMode(
        "dense+graph+rerank", SearchMode.DENSE, Fusion.DBSF, graph=True, rerank=True
    )
    for bad in ("hybrid+magic", "fuzzy", "hybrid-sum"):
        with pytest.raises(ValueError, match=r"magic|fuzzy|sum"):
            parse_mode(bad)


def test_metrics_on_a_known_ranking() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "x"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "a"], {"a": 1}, 10) == pytest.approx(1 / 1.5849625, rel=1e-6)
    assert recall_at(["a", "x"], relevant, 100) == 0.5


def test_the_table_replaces_only_what_lies_between_the_markers() -> None:
    table = "\n".join(markdown_table([("dense", "0.500")], ("mode", "nDCG@10")))
    assert table == "| mode | nDCG@10 |\n|---|---|\n| dense | 0.500 |"
    before = f"intro\n{TABLE_START}\nold\nlines\n{TABLE_END}\noutro\n"
    after = replace_table(before, table + "\n")
    assert after == f"intro\n{TABLE_START}\n{table}\n{TABLE_END}\noutro\n"
    assert replace_table(after, table) == after  # idempotent
    with pytest.raises(ValueError, match="markers"):
        replace_table("no markers here", table)
