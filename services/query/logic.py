"""Pure retrieval logic: fusion of ranked lists, reranked order, document grouping and pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from schemas.search import RRF_K

RERANK = "rerank"  # the name the second stage records its rank and score under
# Fusion weight of each list unless a request sets it. The graph's list is a weak signal on its own (its
# entities come from general-purpose NER): on SciFact train, at 1.0 it cost hybrid 0.05 nDCG@10; at 0.25
# it is neutral (+0.002 over 809 queries). See docs/decisions/0009-retrieval-graph-rerank.md.
DEFAULT_WEIGHTS = {"dense": 1.0, "sparse": 1.0, "graph": 0.25}

Scored = tuple[str, float, Mapping[str, Any]]  # (point id, the retriever's own score, payload)
T = TypeVar("T")


@dataclass
class Fused:
    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # retriever -> 1-based rank
    payload: Mapping[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # retriever -> its own score, for `explain`

    @property
    def document_id(self) -> str:
        return str(self.payload.get("document_id"))


@dataclass
class DocumentGroup:
    """A document at the rank of its best chunk, with its best chunks in order."""

    best: Fused
    chunks: list[Fused]


def reciprocal_rank_fusion(
    ranked: Mapping[str, Sequence[Scored]], *, k: int = RRF_K, weights: Mapping[str, float] | None = None
) -> list[Fused]:
    """Fuse ranked lists: score = Σ weight / (k + rank). Ties keep first-seen order."""
    fused: dict[str, Fused] = {}
    for retriever, hits in ranked.items():
        weight = _weight(weights, retriever)
        for rank, (point_id, score, payload) in enumerate(hits, start=1):
            entry = fused.setdefault(point_id, Fused(id=point_id, score=0.0, payload=payload))
            entry.score += weight / (k + rank)
            entry.ranks[retriever] = rank
            entry.scores[retriever] = score
    return sorted(fused.values(), key=lambda f: f.score, reverse=True)


def distribution_based_fusion(
    scored: Mapping[str, Sequence[Scored]], *, weights: Mapping[str, float] | None = None
) -> list[Fused]:
    """Fuse scored lists the way Qdrant's DBSF does: each list's scores are mapped from
    [mean - 3σ, mean + 3σ] to [0, 1], then summed per id (times the list's weight), so neither
    retriever's scale dominates."""
    fused: dict[str, Fused] = {}
    for retriever, hits in scored.items():
        if not hits:
            continue
        weight = _weight(weights, retriever)
        scores = [score for _, score, _ in hits]
        mean = sum(scores) / len(scores)
        spread = 3 * (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        low, width = mean - spread, 2 * spread
        for rank, (point_id, score, payload) in enumerate(hits, start=1):
            entry = fused.setdefault(point_id, Fused(id=point_id, score=0.0, payload=payload))
            entry.score += weight * ((score - low) / width if width > 0 else 0.5)
            entry.ranks[retriever] = rank
            entry.scores[retriever] = score
    return sorted(fused.values(), key=lambda f: f.score, reverse=True)


def single_list(retriever: str, hits: Sequence[Scored]) -> list[Fused]:
    """One retriever's hits in the fused shape, keeping the engine's own scores."""
    return [
        Fused(id=i, score=s, ranks={retriever: r}, payload=p, scores={retriever: s})
        for r, (i, s, p) in enumerate(hits, start=1)
    ]


def rerank_order(hits: Sequence[Fused], scores: Sequence[float]) -> list[Fused]:
    """The first `len(scores)` hits reordered by their reranker scores, which become their scores;
    the hits beyond the reranked depth follow in their fused order."""
    head = [
        Fused(
            id=h.id,
            score=s,
            ranks=dict(h.ranks),
            payload=h.payload,
            scores={**h.scores, RERANK: s},
        )
        for h, s in zip(hits, scores, strict=False)
    ]
    head.sort(key=lambda f: f.score, reverse=True)  # stable: equal scores keep the fused order
    for rank, hit in enumerate(head, start=1):
        hit.ranks[RERANK] = rank
    return [*head, *hits[len(head) :]]


def group_by_document(hits: Sequence[Fused], *, per_document: int) -> list[DocumentGroup]:
    """Documents in the order of their best chunk, each with up to `per_document` chunks, best first."""
    groups: dict[str, DocumentGroup] = {}
    for hit in hits:
        group = groups.get(hit.document_id)
        if group is None:
            groups[hit.document_id] = DocumentGroup(best=hit, chunks=[hit])
        elif len(group.chunks) < per_document:
            group.chunks.append(hit)
    return list(groups.values())


def first_per_document(hits: Sequence[Fused], *, limit: int) -> list[Fused]:
    """Document-level ranking: each document at the rank of its best chunk."""
    return [g.best for g in group_by_document(hits, per_document=1)[:limit]]


def page(items: Sequence[T], *, offset: int, size: int) -> tuple[list[T], int | None]:
    """One page of `items` and the offset of the next page (None on the last one)."""
    end = offset + size
    return list(items[offset:end]), end if len(items) > end else None


def _weight(weights: Mapping[str, float] | None, retriever: str) -> float:
    return 1.0 if weights is None else weights.get(retriever, 1.0)
