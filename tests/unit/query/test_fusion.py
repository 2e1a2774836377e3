from __future__ import annotations

import pytest

from services.query.logic import (
    RERANK,
    Fused,
    Scored,
    distribution_based_fusion,
    first_per_document,
    group_by_document,
    page,
    reciprocal_rank_fusion,
    rerank_order,
    single_list,
)


def _ranked(*ids: str, top: float = 1.0) -> list[tuple[str, float, dict[str, str]]]:
    """Hits with descending scores; an id `d#n` is chunk n of document d."""
    return [(i, top - n * 0.1, {"document_id": i.split("#")[0]}) for n, i in enumerate(ids)]


def test_rrf_rewards_agreement_and_records_each_retrievers_rank_and_score() -> None:
    fused = reciprocal_rank_fusion({"dense": _ranked("a", "b", "c"), "sparse": _ranked("c", "a", "d")}, k=60)
    assert [f.id for f in fused][:2] == ["a", "c"]
    by_id = {f.id: f for f in fused}
    assert by_id["a"].ranks == {"dense": 1, "sparse": 2}
    assert by_id["a"].scores == pytest.approx({"dense": 1.0, "sparse": 0.9})
    assert by_id["d"].ranks == {"sparse": 3}
    assert abs(by_id["a"].score - (1 / 61 + 1 / 62)) < 1e-12


def test_rrf_k_sets_how_much_the_top_ranks_dominate() -> None:
    # "a" is first in one list only; "b" is second in both. A small k favours the single first place.
    lists = {"dense": _ranked("a", "b"), "sparse": _ranked("c", "b", "d", "a")}
    assert reciprocal_rank_fusion(lists, k=1)[0].id == "a"
    assert reciprocal_rank_fusion(lists, k=60)[0].id == "b"


def test_weights_tilt_rrf_towards_one_retriever() -> None:
    lists = {"dense": _ranked("a"), "sparse": _ranked("b")}
    assert [f.id for f in reciprocal_rank_fusion(lists, weights={"sparse": 2.0})] == ["b", "a"]
    assert [f.id for f in reciprocal_rank_fusion(lists, weights={"dense": 2.0})] == ["a", "b"]


def test_a_zero_weight_silences_a_retriever_but_keeps_its_ranks_for_explain() -> None:
    lists = {"dense": _ranked("a", "b", "c"), "sparse": _ranked("c", "b", "a")}
    fused = reciprocal_rank_fusion(lists, weights={"sparse": 0.0})
    assert [f.id for f in fused] == ["a", "b", "c"]
    assert fused[0].ranks == {"dense": 1, "sparse": 3}


def test_single_list_keeps_engine_scores_and_ranks() -> None:
    hits = single_list("dense", [("x", 0.9, {}), ("y", 0.5, {})])
    assert [(h.id, h.score, h.ranks, h.scores) for h in hits] == [
        ("x", 0.9, {"dense": 1}, {"dense": 0.9}),
        ("y", 0.5, {"dense": 2}, {"dense": 0.5}),
    ]


def test_first_per_document_ranks_each_document_by_its_best_chunk() -> None:
    fused = reciprocal_rank_fusion({"dense": _ranked("d1#0", "d1#1", "d2#0", "d3#0")})
    assert [h.document_id for h in first_per_document(fused, limit=2)] == ["d1", "d2"]


def test_dbsf_normalises_each_list_so_neither_scale_dominates() -> None:
    dense: list[Scored] = [("a", 0.90, {}), ("b", 0.85, {}), ("c", 0.80, {})]  # cosine: narrow range
    sparse: list[Scored] = [("c", 40.0, {}), ("a", 10.0, {}), ("d", 5.0, {})]  # BM25: wide range
    fused = {f.id: f for f in distribution_based_fusion({"dense": dense, "sparse": sparse})}
    assert fused["a"].ranks == {"dense": 1, "sparse": 2}
    assert fused["a"].scores == {"dense": 0.90, "sparse": 10.0}
    # Raw sums would let BM25's scale decide (c: 40.8 vs a: 10.9); normalised, a's lead in dense counts.
    assert [f for f in sorted(fused, key=lambda i: -fused[i].score)] == ["a", "c", "b", "d"]
    assert all(0.0 <= f.score <= 2.0 for f in fused.values())


def test_weighted_dbsf_scales_each_lists_normalised_contribution() -> None:
    dense: list[Scored] = [("a", 0.90, {}), ("b", 0.85, {}), ("c", 0.80, {})]
    sparse: list[Scored] = [("c", 40.0, {}), ("a", 10.0, {}), ("d", 5.0, {})]
    plain = {f.id: f.score for f in distribution_based_fusion({"dense": dense, "sparse": sparse})}
    tilted = distribution_based_fusion({"dense": dense, "sparse": sparse}, weights={"sparse": 3.0})
    assert tilted[0].id == "c"
    # Only sparse's share changes: "b" appears in dense alone, so its score is the same either way.
    assert {f.id: f.score for f in tilted}["b"] == pytest.approx(plain["b"])


def test_dbsf_of_a_constant_list_is_finite() -> None:
    fused = distribution_based_fusion({"dense": [("a", 1.0, {}), ("b", 1.0, {})], "sparse": []})
    assert [f.score for f in fused] == [0.5, 0.5]


def _fused(*ids: str) -> list[Fused]:
    return reciprocal_rank_fusion({"dense": _ranked(*ids)})


def test_rerank_reorders_the_head_and_leaves_the_tail_in_fused_order() -> None:
    hits = _fused("a", "b", "c", "d", "e")
    out = rerank_order(hits, [0.1, 0.9, 0.5])  # scores for a, b, c; d and e are beyond the depth
    assert [h.id for h in out] == ["b", "c", "a", "d", "e"]
    assert [h.score for h in out[:3]] == [0.9, 0.5, 0.1]
    assert out[0].ranks == {"dense": 2, RERANK: 1}
    assert out[0].scores[RERANK] == 0.9
    assert RERANK not in out[3].ranks and out[3] is hits[3]
    assert RERANK not in hits[1].ranks  # the input is not modified


def test_group_by_document_keeps_the_best_chunks_of_each_document_in_order() -> None:
    hits = _fused("d1#0", "d2#0", "d1#1", "d1#2", "d3#0", "d2#1", "d1#3")
    groups = group_by_document(hits, per_document=2)
    assert [(g.best.id, [c.id for c in g.chunks]) for g in groups] == [
        ("d1#0", ["d1#0", "d1#1"]),
        ("d2#0", ["d2#0", "d2#1"]),
        ("d3#0", ["d3#0"]),
    ]


def test_pages_cover_the_list_once_and_say_where_the_next_starts() -> None:
    items = list(range(23))
    seen: list[int] = []
    offset: int | None = 0
    offsets = []
    while offset is not None:
        offsets.append(offset)
        chunk, offset = page(items, offset=offset, size=10)
        seen += chunk
    assert seen == items
    assert offsets == [0, 10, 20]
    assert page(items, offset=20, size=3) == ([20, 21, 22], None)
    assert page(items, offset=30, size=10) == ([], None)
