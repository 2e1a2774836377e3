"""Embedding benchmarks: throughput against fp32 sentence-transformers, and dense nDCG@10 on SciFact."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from headwater.evaluation import load_beir, mean_ndcg
from headwater.kernel.model_files import load_tokenizer
from services.embedder.ports import EmbeddingBackend, Matrix

SCIFACT = Path("../shared/datasets/scifact")
Printer = Callable[[str], None]


def load_scifact_corpus(path: Path) -> tuple[list[str], list[str]]:
    """Document ids and texts (title + " " + text), in file order."""
    ids, texts = [], []
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            ids.append(str(row["_id"]))
            texts.append(f"{row.get('title', '')} {row['text']}".strip())
    return ids, texts


def truncate_tokens(texts: Sequence[str], *, max_tokens: int) -> list[str]:
    """Cut each text after its `max_tokens`-th word piece, at the piece's end offset."""
    encodings = load_tokenizer().encode_batch(list(texts), add_special_tokens=False)
    return [
        t if len(e.offsets) <= max_tokens else t[: e.offsets[max_tokens - 1][1]]
        for t, e in zip(texts, encodings, strict=True)
    ]


def _timed(backend: EmbeddingBackend, texts: Sequence[str]) -> tuple[Matrix, float]:
    start = time.perf_counter()
    rows = backend.embed(texts)
    return rows, time.perf_counter() - start


def run(
    texts: Sequence[str],
    *,
    backends: Mapping[str, EmbeddingBackend],
    reference: str | None = None,
    rounds: int = 2,
    echo: Printer = print,
) -> dict[str, dict[str, float]]:
    """Print chunks/s per backend (best of interleaved rounds), the ratio to `reference` and cosine vs it.

    `reference` defaults to the first backend; make it fp32 sentence-transformers at batch 32.
    """
    reference = reference or next(iter(backends))
    for backend in backends.values():
        backend.embed(texts[:8])  # warm-up: lazy allocations and thread pools are not throughput
    best: dict[str, float] = {}
    rows: dict[str, Matrix] = {}
    # Interleaving rounds spreads the noise of a shared machine over every backend alike.
    for _ in range(rounds):
        for name, backend in backends.items():
            rows[name], seconds = _timed(backend, texts)
            best[name] = max(best.get(name, 0.0), len(texts) / seconds)
    figures: dict[str, dict[str, float]] = {}
    for name in backends:
        # Backends of another dimension live in another space: no cosine against the reference.
        same = rows[name].shape == rows[reference].shape
        cosines = np.sum(rows[name] * rows[reference], axis=1) if same else np.full(1, np.nan)
        figures[name] = {
            "chunks_per_s": best[name],
            "ratio": best[name] / best[reference],
            "cos_min": float(cosines.min()),
            "cos_mean": float(cosines.mean()),
        }
        f = figures[name]
        echo(
            f"{name:>12}: {f['chunks_per_s']:7.1f} chunks/s  ×{f['ratio']:.2f} vs {reference}"
            f"  cosine min {f['cos_min']:.4f} mean {f['cos_mean']:.4f}  ({len(texts)} texts)"
        )
    return figures


def dense_ndcg(
    backend: EmbeddingBackend,
    *,
    dataset: Path = SCIFACT,
    split: str = "train",
    k: int = 10,
    echo: Printer = print,
) -> float:
    """Embed the whole corpus and the split's judged queries, rank by dot product, return nDCG@k."""
    doc_ids, docs = load_scifact_corpus(dataset / "corpus.jsonl")
    beir = load_beir(dataset, split=split)
    qrels, queries = beir.qrels, beir.queries
    start = time.perf_counter()
    doc_rows = backend.embed(docs)
    query_rows = backend.embed(list(queries.values()))
    seconds = time.perf_counter() - start
    top = np.argsort(-(query_rows @ doc_rows.T), axis=1)[:, :k]
    ranked = {qid: [doc_ids[j] for j in top[i]] for i, qid in enumerate(queries)}
    score = mean_ndcg(ranked, qrels, k=k)
    echo(
        f"{backend.model_id:>28}: nDCG@{k} {score:.4f} on {len(queries)} {split} queries,"
        f" {len(docs)} docs, {seconds:.0f} s"
    )
    return score


def default_backends(*, device: str = "cpu") -> dict[str, EmbeddingBackend]:
    """The reference (fp32 sentence-transformers, batch 32) first, then the int8 ONNX candidate."""
    from services.embedder.adapters.local import SentenceTransformerBackend
    from services.embedder.adapters.onnx import OnnxBackend

    return {
        "fp32-st": SentenceTransformerBackend(device=device, batch_size=32),
        "onnx-int8": OnnxBackend(batch_size=32),
    }


def scifact_texts(limit: int, *, dataset: Path = SCIFACT, max_tokens: int = 256) -> list[str]:
    """The first `limit` SciFact abstracts as chunks: title + " " + text, cut at `max_tokens` word pieces."""
    _, docs = load_scifact_corpus(dataset / "corpus.jsonl")
    return truncate_tokens(docs[:limit], max_tokens=max_tokens)
