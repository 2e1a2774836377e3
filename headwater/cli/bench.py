"""`headwater eval` and `headwater bench …`: figures printed against a yardstick measured in the same run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from headwater.cli.common import configure_logging, ingest_with_progress, out, running
from headwater.kernel.model_files import offline

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures against a yardstick.")


def evaluate(
    directory: Annotated[Path, typer.Argument(help="BEIR-format dataset folder")],
    split: Annotated[str, typer.Option(help="queries-<split>.jsonl and qrels-<split>.tsv")] = "test",
    mode: Annotated[
        list[str] | None,
        typer.Option(
            help="dense, sparse, hybrid (DBSF), hybrid-rrf, each with +graph and/or +rerank "
            "(repeatable; default: hybrid, hybrid+graph, hybrid-rrf, dense, sparse, hybrid+rerank)"
        ),
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="write one TREC run file per mode here")
    ] = None,
    run_out: Annotated[
        Path | None, typer.Option("--run-out", help="TREC run file (mode appended when several)")
    ] = None,
    readme: Annotated[
        Path | None, typer.Option("--readme", help="rewrite the table between the eval-table markers")
    ] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="keep the index here (default: temporary)")
    ] = None,
    skip_ingest: Annotated[
        bool, typer.Option("--skip-ingest", help="query the index an earlier run left in --home")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="only the first N corpus documents (smoke runs)")] = None,
    queries: Annotated[
        int | None, typer.Option(help="only the first N queries (quick iterations, never the README)")
    ] = None,
    markdown: Annotated[bool, typer.Option(help="print the table as Markdown")] = False,
) -> None:
    """Ingest a BEIR corpus through the full pipeline once, then score every mode over that index:
    nDCG@10, recall@100 and MRR@10, side by side."""
    from headwater.bench.retrieval import EvalOptions, run_evaluation
    from headwater.evaluation import DEFAULT_MODES, parse_mode

    configure_logging()
    for name in mode or ():
        try:
            parse_mode(name)
        except ValueError as exc:  # checked before the (long) ingest, not after it
            raise typer.BadParameter(f"mode {name!r}: {exc}") from None
    if skip_ingest and home is None:
        raise typer.BadParameter("--skip-ingest needs the --home of an earlier run")
    if readme is not None and (limit or queries):
        raise typer.BadParameter("the README table is written from full runs only (no --limit or --queries)")
    options = EvalOptions(
        split=split,
        modes=mode or list(DEFAULT_MODES),
        command=f"headwater eval {directory} --split {split}",
        limit=limit,
        query_limit=queries,
        skip_ingest=skip_ingest,
        run_out=run_out,
        runs_dir=runs_dir,
        readme=readme,
        markdown=markdown,
    )
    with (
        tempfile.TemporaryDirectory(prefix="headwater-eval-") as scratch,
        running(home or Path(scratch)) as runtime,
    ):
        run_evaluation(runtime, directory, options=options, ingest=ingest_with_progress, console=out)


@bench_app.command(name="ingest")
def bench_ingest(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl or IngestDocument JSONL")] = Path(
        "../shared/datasets/scifact/corpus.jsonl"
    ),
    limit: Annotated[int, typer.Option(help="documents to ingest")] = 400,
) -> None:
    """Documents/s and chunks/s of the embedded pipeline, per-stage time shares, and the ratio to a fixed
    yardstick: sentence-transformers all-MiniLM-L6-v2 fp32 encoding the same chunk texts at batch 32."""
    from headwater.bench.ingest import bench_ingest as run

    configure_logging()
    with (
        tempfile.TemporaryDirectory(prefix="headwater-bench-") as scratch,
        running(Path(scratch)) as runtime,
    ):
        run(runtime, corpus=corpus, limit=limit, console=out)


@bench_app.command(name="freshness")
def bench_freshness(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl or IngestDocument JSONL")] = Path(
        "../shared/datasets/scifact/corpus.jsonl"
    ),
    documents: Annotated[int, typer.Option(help="documents per phase (capacity, steady, burst)")] = 150,
    partitions: Annotated[int, typer.Option(help="partitions per topic")] = 6,
) -> None:
    """Intake-acknowledged → searchable latency (p50/p95/p99), throughput and peak RSS per service, on
    the distributed pipeline over a local broker, steady at half the measured maximum and in a burst."""
    from headwater.bench.freshness import bench_freshness as run

    configure_logging()
    offline()
    run(corpus=corpus, documents=documents, partitions=partitions, console=out)


@bench_app.command(name="query")
def bench_query(
    dataset: Annotated[Path, typer.Option(help="SciFact folder: corpus.jsonl, queries-train.jsonl")] = Path(
        "../shared/datasets/scifact"
    ),
    chunks: Annotated[int, typer.Option(min=100, help="live chunks in the index")] = 100_000,
    real_documents: Annotated[int, typer.Option(min=1, help="abstracts chunked and embedded")] = 1000,
    tenants: Annotated[int, typer.Option(min=1, max=99)] = 8,
    queries: Annotated[int | None, typer.Option(min=1, help="first N train queries (default all)")] = None,
    concurrency: Annotated[list[int] | None, typer.Option(help="threads (repeatable; default 1, 8)")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="built indexes (default ~/.cache/headwater/bench-query)")
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="build the index again even if cached")] = False,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Search p50/p95/p99 latency and QPS per mode at concurrency 1 and 8 over N realistic chunks, query
    embedding timed apart, against an exact numpy search over the same vectors in the same run."""
    from headwater.bench.query import run_bench_query
    from services.embedder.config import EmbedderSettings
    from services.embedder.factory import build_backend

    configure_logging()
    offline()
    run_bench_query(
        dataset=dataset,
        backend=build_backend(EmbedderSettings()),
        chunks=chunks,
        real_documents=real_documents,
        tenants=tenants,
        queries=queries,
        concurrency=concurrency or [1, 8],
        cache_dir=cache_dir or Path.home() / ".cache" / "headwater" / "bench-query",
        rebuild=rebuild,
        seed=seed,
        console=out,
    )


@bench_app.command(name="migrate")
def bench_migrate(
    dataset: Annotated[Path, typer.Option(help="SciFact folder: corpus.jsonl, queries-train.jsonl")] = Path(
        "../shared/datasets/scifact"
    ),
    documents: Annotated[int, typer.Option(min=10, help="abstracts in the index")] = 400,
    queries: Annotated[int, typer.Option(min=1, help="first N train queries: searched and scored")] = 100,
    model: Annotated[str, typer.Option(help="target embedding profile")] = "minilm-int8-d256",
) -> None:
    """A model migration on the embedded runtime under search load: backfill chunks/s against embedding
    alone, search p50/p99 during the backfill against before it, both sides' nDCG@10, cutover time."""
    from headwater.bench.migrate import run_bench_migrate
    from services.embedder.config import EmbedderSettings
    from services.embedder.profiles import load_profiles, resolve_profile

    configure_logging()
    offline()
    profile = resolve_profile(model, load_profiles(EmbedderSettings().profiles_file))
    run_bench_migrate(dataset=dataset, documents=documents, queries=queries, profile=profile, console=out)


@bench_app.command(name="embed")
def bench_embed(
    texts: Annotated[int, typer.Option(min=1, help="SciFact abstracts embedded per backend and round")] = 500,
    dataset: Annotated[Path, typer.Option(help="SciFact folder: corpus.jsonl (and train split)")] = Path(
        "../shared/datasets/scifact"
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto (cuda when present)")] = "cpu",
    quality: Annotated[bool, typer.Option(help="also dense nDCG@10 per backend on the train split")] = False,
) -> None:
    """Chunks/s of each local embedding backend (fp32 sentence-transformers first, the yardstick; int8 ONNX)
    on the same texts in the same run, with the ratio and the cosine to the yardstick's vectors."""
    from headwater.bench.embed import default_backends, dense_ndcg, run, scifact_texts

    configure_logging()
    offline()
    backends = default_backends(device=device)
    run(scifact_texts(texts, dataset=dataset), backends=backends, echo=out.print)
    if quality:
        for backend in backends.values():
            dense_ndcg(backend, dataset=dataset, echo=out.print)
