"""Ranking metrics (nDCG, recall, MRR) over judged runs, and TREC run files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sum(rel / math.log2(i + 2) for i, rel in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


def mean_ndcg(
    ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], *, k: int = 10
) -> float:
    """Mean nDCG@k over every judged query; a query missing from `ranked` scores 0."""
    scores = [ndcg_at(ranked.get(qid, []), judged, k) for qid, judged in qrels.items()]
    return sum(scores) / len(scores) if scores else 0.0


def recall_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    positives = {d for d, rel in relevant.items() if rel > 0}
    return len(positives.intersection(ranking[:k])) / len(positives) if positives else 0.0


def mrr_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for i, doc in enumerate(ranking[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


@dataclass(frozen=True)
class Scores:
    ndcg_10: float
    recall_100: float
    mrr_10: float
    queries: int


def score_run(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> Scores:
    judged = [q for q in qrels if q in run]
    n = len(judged) or 1
    return Scores(
        ndcg_10=sum(ndcg_at(run[q], qrels[q], 10) for q in judged) / n,
        recall_100=sum(recall_at(run[q], qrels[q], 100) for q in judged) / n,
        mrr_10=sum(mrr_at(run[q], qrels[q], 10) for q in judged) / n,
        queries=len(judged),
    )


def write_trec_run(path: Path, run: Mapping[str, Sequence[tuple[str, float]]], *, tag: str) -> None:
    """TREC run format: `qid Q0 docid rank score tag`."""
    with path.open("w") as out:
        for query_id, ranked in run.items():
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                out.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")
