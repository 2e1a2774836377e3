"""BEIR-format datasets: corpus, queries and relevance judgements, and the corpus as intake commands."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas import IngestDocument, SourceKind, SourceRef


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
