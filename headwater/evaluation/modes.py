"""Named retrieval setups an evaluation compares, and the search requests they make."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.evaluation.beir import BeirDataset
from schemas import Fusion, SearchMode, SearchRequest


@dataclass(frozen=True)
class EvalMode:
    """A named retrieval setup: `dense`, `sparse`, `hybrid` (DBSF) or `hybrid-rrf`, optionally with
    `+graph` (the knowledge-graph list fused in) and `+rerank` (the server's second stage)."""

    name: str
    mode: SearchMode
    fusion: Fusion
    graph: bool = False
    rerank: bool = False


DEFAULT_MODES = ("hybrid", "hybrid+graph", "hybrid-rrf", "dense", "sparse", "hybrid+rerank")


def parse_mode(name: str) -> EvalMode:
    """`hybrid`, `hybrid-rrf`, `hybrid-dbsf`, `dense`, `sparse`, each with `+graph` and/or `+rerank`."""
    base, *extras = name.split("+")
    mode, _, fusion = base.partition("-")
    unknown = set(extras) - {"graph", "rerank"}
    if unknown:
        raise ValueError(f"unknown mode suffix {sorted(unknown)} in {name!r}")
    return EvalMode(
        name=name,
        mode=SearchMode(mode),
        fusion=Fusion(fusion) if fusion else Fusion.DBSF,
        graph="graph" in extras,
        rerank="rerank" in extras,
    )


def search_requests(
    dataset: BeirDataset, *, tenant: str, mode: EvalMode, top_k: int = 100
) -> dict[str, SearchRequest]:
    return {
        qid: SearchRequest(
            query=text[:2048],
            tenant=tenant,
            mode=mode.mode,
            fusion=mode.fusion,
            graph=mode.graph,
            rerank=mode.rerank,
            top_k=top_k,
        )
        for qid, text in dataset.queries.items()
    }
