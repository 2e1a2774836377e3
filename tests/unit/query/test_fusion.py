from __future__ import annotations

from services.query.logic import first_per_document, reciprocal_rank_fusion, single_list


def _ranked(*ids: str) -> list[tuple[str, dict[str, str]]]:
    return [(i, {"document_id": i.split("#")[0]}) for i in ids]


def test_rrf_rewards_agreement_and_records_each_retrievers_rank() -> None:
    fused = reciprocal_rank_fusion({"dense": _ranked("a", "b", "c"), "sparse": _ranked("c", "a", "d")}, k=60)
    assert [f.id for f in fused][:2] == ["a", "c"]
    by_id = {f.id: f for f in fused}
    assert by_id["a"].ranks == {"dense": 1, "sparse": 2}
    assert by_id["d"].ranks == {"sparse": 3}
    assert abs(by_id["a"].score - (1 / 61 + 1 / 62)) < 1e-12


def test_weights_tilt_fusion_towards_one_retriever() -> None:
    fused = reciprocal_rank_fusion({"dense": _ranked("a"), "sparse": _ranked("b")}, weights={"sparse": 2.0})
    assert [f.id for f in fused] == ["b", "a"]


def test_single_list_keeps_engine_scores_and_ranks() -> None:
    hits = single_list("dense", [("x", 0.9, {}), ("y", 0.5, {})])
    assert [(h.id, h.score, h.ranks) for h in hits] == [("x", 0.9, {"dense": 1}), ("y", 0.5, {"dense": 2})]


def test_first_per_document_ranks_each_document_by_its_best_chunk() -> None:
    fused = reciprocal_rank_fusion({"dense": _ranked("d1#0", "d1#1", "d2#0", "d3#0")})
    assert [h.payload["document_id"] for h in first_per_document(fused, limit=2)] == ["d1", "d2"]


def test_dbsf_normalises_each_list_so_neither_scale_dominates() -> None:
    from services.query.logic import distribution_based_fusion

    dense = [("a", 0.90, {}), ("b", 0.85, {}), ("c", 0.80, {})]  # cosine: narrow range
    sparse = [("c", 40.0, {}), ("a", 10.0, {}), ("d", 5.0, {})]  # BM25: wide range
    fused = {f.id: f for f in distribution_based_fusion({"dense": dense, "sparse": sparse})}
    assert fused["a"].ranks == {"dense": 1, "sparse": 2}
    # Raw sums would let BM25's scale decide (c: 40.8 vs a: 10.9); normalised, a's lead in dense counts.
    assert [f for f in sorted(fused, key=lambda i: -fused[i].score)] == ["a", "c", "b", "d"]
    assert all(0.0 <= f.score <= 2.0 for f in fused.values())


def test_dbsf_of_a_constant_list_is_finite() -> None:
    from services.query.logic import distribution_based_fusion

    fused = distribution_based_fusion({"dense": [("a", 1.0, {}), ("b", 1.0, {})], "sparse": []})
    assert [f.score for f in fused] == [0.5, 0.5]
