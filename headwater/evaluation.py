"""`headwater eval`: ingest a BEIR corpus through the embedded pipeline, query every mode, score it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from headwater.eval import (
    BeirDataset,
    Scores,
    corpus_commands,
    load_beir,
    score_run,
    search_requests,
    write_trec_run,
)
from headwater.runtime.embedded import EmbeddedHeadwater
from schemas import IngestDocument

EVAL_TENANT = "eval"

Ingest = Callable[..., float]


def run_evaluation(
    runtime: EmbeddedHeadwater,
    directory: Path,
    *,
    split: str,
    modes: list[str],
    run_out: Path | None,
    limit: int | None,
    markdown: bool,
    ingest: Ingest,
    console: Console,
) -> dict[str, Scores]:
    dataset = load_beir(directory, split=split)
    if limit:
        dataset = BeirDataset(corpus=dataset.corpus[:limit], queries=dataset.queries, qrels=dataset.qrels)
    commands: Iterable[IngestDocument] = corpus_commands(dataset, tenant=EVAL_TENANT)
    elapsed = ingest(runtime, commands, total=len(dataset.corpus))
    stats = runtime.stats()
    console.print(
        f"Ingested {len(dataset.corpus)} documents as {stats['chunks']} chunks in {elapsed:.0f} s "
        f"({stats['dead_letters']} dead-lettered); PII redacted: {stats['pii']}"
    )
    # Embed every query once, in batches, and reuse the vectors for the dense and hybrid modes.
    texts = list(dataset.queries.values())
    vectors = runtime.parts.backend.embed(texts)
    cached = {text: [float(x) for x in vector] for text, vector in zip(texts, vectors, strict=True)}
    service = dataclasses.replace(
        runtime.query, embed_query=lambda text: cached.get(text) or _embed(runtime, text)
    )
    results: dict[str, Scores] = {}
    timings: dict[str, float] = {}
    for mode in modes:
        requests = search_requests(dataset, tenant=EVAL_TENANT, mode=mode)
        run: dict[str, list[tuple[str, float]]] = {}
        started = time.perf_counter()
        for query_id, request in requests.items():
            hits = service.search_documents(request, limit=100)
            run[query_id] = [(str(h.payload["document_id"]), h.score) for h in hits]
        timings[mode] = (time.perf_counter() - started) * 1000 / max(1, len(requests))
        results[mode] = score_run({q: [d for d, _ in r] for q, r in run.items()}, dataset.qrels)
        if run_out:
            path = run_out if len(modes) == 1 else run_out.with_name(f"{run_out.stem}.{mode}{run_out.suffix}")
            write_trec_run(path, run, tag=f"headwater-{mode}")
    _print_table(results, timings, console=console, markdown=markdown, split=split, name=directory.name)
    return results


def _embed(runtime: EmbeddedHeadwater, text: str) -> list[float]:
    return [float(x) for x in runtime.parts.backend.embed([text])[0]]


def _print_table(
    results: dict[str, Scores],
    timings: dict[str, float],
    *,
    console: Console,
    markdown: bool,
    split: str,
    name: str,
) -> None:
    rows: list[tuple[Any, ...]] = [
        (
            mode,
            f"{s.ndcg_10:.3f}",
            f"{s.recall_100:.3f}",
            f"{s.mrr_10:.3f}",
            f"{timings[mode]:.1f}",
            s.queries,
        )
        for mode, s in results.items()
    ]
    header = ("mode", "nDCG@10", "recall@100", "MRR@10", "ms/query", "queries")
    if markdown:
        console.print(f"| {' | '.join(header)} |", markup=False)
        console.print("|" + "---|" * len(header), markup=False)
        for row in rows:
            console.print("| " + " | ".join(str(c) for c in row) + " |", markup=False)
        return
    table = Table(title=f"{name} ({split} split)")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console.print(table)
