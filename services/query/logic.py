"""Pure retrieval logic: fusion of ranked lists and shaping of hits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RRF_K = 60  # the constant of Cormack et al.; robust across collections


@dataclass
class Fused:
    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # retriever -> 1-based rank
    payload: Mapping[str, Any] = field(default_factory=dict)


def reciprocal_rank_fusion(
    ranked: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    *,
    k: int = RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[Fused]:
    """Fuse ranked lists of (id, payload): score = Σ weight / (k + rank). Ties keep first-seen order."""
    fused: dict[str, Fused] = {}
    for retriever, hits in ranked.items():
        weight = 1.0 if weights is None else weights.get(retriever, 1.0)
        for rank, (point_id, payload) in enumerate(hits, start=1):
            entry = fused.setdefault(point_id, Fused(id=point_id, score=0.0, payload=payload))
            entry.score += weight / (k + rank)
            entry.ranks[retriever] = rank
    return sorted(fused.values(), key=lambda f: f.score, reverse=True)


def distribution_based_fusion(
    scored: Mapping[str, Sequence[tuple[str, float, Mapping[str, Any]]]],
) -> list[Fused]:
    """Fuse scored lists the way Qdrant's DBSF does: each list's scores are mapped from
    [mean - 3σ, mean + 3σ] to [0, 1], then summed per id, so neither retriever's scale dominates."""
    fused: dict[str, Fused] = {}
    for retriever, hits in scored.items():
        if not hits:
            continue
        scores = [score for _, score, _ in hits]
        mean = sum(scores) / len(scores)
        spread = 3 * (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        low, width = mean - spread, 2 * spread
        for rank, (point_id, score, payload) in enumerate(hits, start=1):
            entry = fused.setdefault(point_id, Fused(id=point_id, score=0.0, payload=payload))
            entry.score += (score - low) / width if width > 0 else 0.5
            entry.ranks[retriever] = rank
    return sorted(fused.values(), key=lambda f: f.score, reverse=True)


def single_list(retriever: str, hits: Sequence[tuple[str, float, Mapping[str, Any]]]) -> list[Fused]:
    """One retriever's hits in the fused shape, keeping the engine's own scores."""
    return [
        Fused(id=i, score=s, ranks={retriever: r}, payload=p) for r, (i, s, p) in enumerate(hits, start=1)
    ]


def first_per_document(hits: Sequence[Fused], *, limit: int) -> list[Fused]:
    """Document-level ranking: each document at the rank of its best chunk."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        document_id = str(hit.payload.get("document_id"))
        if document_id in seen:
            continue
        seen.add(document_id)
        out.append(hit)
        if len(out) == limit:
            break
    return out
