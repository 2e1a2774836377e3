"""Retrieval evaluation over a BEIR-format dataset, through the full pipeline and the query service."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas import Fusion, IngestDocument, SearchMode, SearchRequest, SourceKind, SourceRef


@dataclass(frozen=True)
class BeirDataset:
    corpus: list[dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(directory: Path, *, split: str) -> BeirDataset:
    """Read `corpus.jsonl`, `queries-<split>.jsonl` and `qrels-<split>.tsv` (or `qrels/<split>.tsv`)."""
    corpus = [
        json.loads(line) for line in (directory / "corpus.jsonl").read_text().splitlines() if line.strip()
    ]
    queries_path = next(
        p for p in (directory / f"queries-{split}.jsonl", directory / "queries.jsonl") if p.exists()
    )
    qrels_path = next(
        p for p in (directory / f"qrels-{split}.tsv", directory / "qrels" / f"{split}.tsv") if p.exists()
    )
    qrels: dict[str, dict[str, int]] = {}
    for line in qrels_path.read_text().splitlines()[1:]:
        if line.strip():
            query_id, doc_id, score = line.split("\t")[:3]
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    for line in queries_path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = row["text"]
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def corpus_commands(dataset: BeirDataset, *, tenant: str) -> Iterable[IngestDocument]:
    for row in dataset.corpus:
        yield IngestDocument(
            tenant=tenant,
            document_id=row["_id"],
            version=1,
            title=row.get("title") or None,
            text=row.get("text") or row.get("title") or "",
            content_type="text/plain",
            source=SourceRef(kind=SourceKind.FILE, name="beir"),
        )


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sum(rel / math.log2(i + 2) for i, rel in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


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


TABLE_START, TABLE_END = "<!-- eval-table -->", "<!-- /eval-table -->"


def markdown_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> list[str]:
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def replace_table(document: str, block: str) -> str:
    """The document with everything between the eval-table markers replaced by `block`."""
    start, end = document.find(TABLE_START), document.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"no {TABLE_START} … {TABLE_END} markers to write the table between")
    return document[: start + len(TABLE_START)] + "\n" + block.strip("\n") + "\n" + document[end:]
