"""`headwater eval`: ingest a BEIR corpus through the embedded pipeline once, then query every mode over
that one index and score them side by side; TREC run files and the README table come from the same run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from headwater.evaluation import (
    BeirDataset,
    EvalMode,
    Scores,
    corpus_commands,
    load_beir,
    markdown_table,
    parse_mode,
    replace_table,
    score_run,
    search_requests,
    write_trec_run,
)
from headwater.runtime.embedded import EmbeddedHeadwater
from schemas import IngestDocument
from schemas.search import RRF_K
from services.indexer.ports import IndexFilter
from services.query.service import QueryService

EVAL_TENANT = "eval"
HEADER = ("mode", "nDCG@10", "recall@100", "MRR@10", "ms/query", "queries")

Ingest = Callable[..., float]


@dataclass(frozen=True)
class EvalOptions:
    split: str
    modes: list[str]
    command: str  # how the run was invoked, quoted above the README table
    limit: int | None = None  # corpus documents (smoke runs)
    query_limit: int | None = None  # queries, for quick iterations; the README table uses them all
    skip_ingest: bool = False  # query the index a previous run left in the same --home
    run_out: Path | None = None
    runs_dir: Path | None = None
    readme: Path | None = None
    markdown: bool = False


@dataclass(frozen=True)
class ModeResult:
    mode: EvalMode
    scores: Scores
    ms_per_query: float


def run_evaluation(
    runtime: EmbeddedHeadwater, directory: Path, *, options: EvalOptions, ingest: Ingest, console: Console
) -> dict[str, Scores]:
    dataset = load_beir(directory, split=options.split)
    if options.limit:
        dataset = dataclasses.replace(dataset, corpus=dataset.corpus[: options.limit])
    if options.query_limit:
        kept = dict(list(dataset.queries.items())[: options.query_limit])
        dataset = dataclasses.replace(dataset, queries=kept)
    if not options.skip_ingest:
        commands: Iterable[IngestDocument] = corpus_commands(dataset, tenant=EVAL_TENANT)
        elapsed = ingest(runtime, commands, total=len(dataset.corpus))
        stats = runtime.stats()
        console.print(
            f"Ingested {len(dataset.corpus)} documents in {elapsed:.0f} s "
            f"({stats['dead_letters']} dead-lettered); PII redacted: {stats['pii']}"
        )
    chunks = runtime.parts.index.count(runtime.collection, IndexFilter(tenant=EVAL_TENANT))
    modes = [parse_mode(m) for m in options.modes]
    skipped = {m.name: why for m in modes if (why := _unavailable(runtime, m))}
    for name, why in skipped.items():
        console.print(f"[yellow]skipping {name}: {why}[/]")
    service = _with_cached_query_vectors(runtime, list(dataset.queries.values()))
    results = [_run_mode(service, dataset, m, options=options) for m in modes if m.name not in skipped]
    if options.markdown:
        for line in markdown_table(_rows(results), HEADER):
            console.print(line, markup=False)
    else:
        table = Table(title=f"{directory.name} ({options.split} split)")
        for column in HEADER:
            table.add_column(column)
        for row in _rows(results):
            table.add_row(*(str(c) for c in row))
        console.print(table)
    if options.readme:
        block = readme_block(runtime, options, results, skipped, documents=len(dataset.corpus), chunks=chunks)
        options.readme.write_text(replace_table(options.readme.read_text(), block))
        console.print(f"Wrote the table into {options.readme}")
    return {r.mode.name: r.scores for r in results}


def _unavailable(runtime: EmbeddedHeadwater, mode: EvalMode) -> str | None:
    if mode.rerank and runtime.query.reranker is None:
        return "no reranker configured (HEADWATER_QUERY_RERANKER=tei or cross-encoder with a local model)"
    if mode.graph and runtime.query.graph is None:
        return "no knowledge graph"
    return None


def _run_mode(
    service: QueryService, dataset: BeirDataset, mode: EvalMode, *, options: EvalOptions
) -> ModeResult:
    requests = search_requests(dataset, tenant=EVAL_TENANT, mode=mode)
    run: dict[str, list[tuple[str, float]]] = {}
    started = time.perf_counter()
    for query_id, request in requests.items():
        hits = service.search_documents(request, limit=100)
        run[query_id] = [(h.document_id, h.score) for h in hits]
    ms = (time.perf_counter() - started) * 1000 / max(1, len(requests))
    scores = score_run({q: [d for d, _ in r] for q, r in run.items()}, dataset.qrels)
    tag = f"headwater-{mode.name}"
    if options.runs_dir:
        options.runs_dir.mkdir(parents=True, exist_ok=True)
        write_trec_run(options.runs_dir / f"{mode.name}.trec", run, tag=tag)
    if options.run_out:
        path = options.run_out
        if len(options.modes) > 1:
            path = path.with_name(f"{path.stem}.{mode.name}{path.suffix}")
        write_trec_run(path, run, tag=tag)
    return ModeResult(mode=mode, scores=scores, ms_per_query=ms)


def _with_cached_query_vectors(runtime: EmbeddedHeadwater, texts: list[str]) -> QueryService:
    """The runtime's query service with every query embedded once, in batches, for all modes alike
    (so ms/query compares retrieval, not repeated embedding)."""
    cached: dict[str, list[float]] = {}
    if texts:
        rows = runtime.parts.backend.embed(texts)
        cached = {t: [float(x) for x in row] for t, row in zip(texts, rows, strict=True)}

    def embed(text: str) -> list[float]:
        return cached.get(text) or [float(x) for x in runtime.parts.backend.embed([text])[0]]

    return dataclasses.replace(runtime.query, embed_query=embed)


def _rows(results: list[ModeResult]) -> list[tuple[object, ...]]:
    return [
        (
            r.mode.name,
            f"{r.scores.ndcg_10:.3f}",
            f"{r.scores.recall_100:.3f}",
            f"{r.scores.mrr_10:.3f}",
            f"{r.ms_per_query:.1f}",
            r.scores.queries,
        )
        for r in results
    ]


def readme_block(
    runtime: EmbeddedHeadwater,
    options: EvalOptions,
    results: list[ModeResult],
    skipped: dict[str, str],
    *,
    documents: int,
    chunks: int,
) -> str:
    """The README's eval section: how it was produced, the table, what each mode is, what was skipped."""
    parts = runtime.parts
    lines = [
        f"`{options.command}`, written by `--readme` (embedded defaults: {parts.embedder.backend} "
        f"embeddings of {parts.backend.model_id}, {parts.chunker.max_tokens}-token chunks with "
        f"{parts.chunker.overlap_tokens} tokens of overlap; {documents:,} documents became "
        f"{chunks:,} chunks):",
        "",
        *markdown_table(_rows(results), HEADER),
        "",
        "Modes: `dense` and `sparse` (BM25) alone; `hybrid` fuses both by distribution-based score fusion "
        "(each list's scores mapped from mean ± 3σ to [0, 1], then summed, as Qdrant's DBSF does), "
        f"`hybrid-rrf` by reciprocal rank fusion (k = {RRF_K}); `+graph` fuses in a third list, the chunks "
        "of the entities named in the query and their neighbours in the knowledge graph; `+rerank` "
        "rescores the fused head with the configured reranker.",
    ]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"`{name}`, {why}" for name, why in skipped.items()) + "."]
    return "\n".join(lines)
