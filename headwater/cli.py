"""The `headwater` command line."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from headwater.commands.compact import compact_command
from headwater.commands.connectors import connectors_app
from headwater.commands.keys import keys_app
from headwater.commands.migrate import migrate_app
from headwater.commands.ops import dlq_app, lag, replay
from headwater.commands.run import run_service
from headwater.commands.webhooks import webhooks_app
from headwater.models import offline
from headwater.stack import stack_app

if TYPE_CHECKING:  # imported lazily at run time: `headwater --help` must not load models
    from headwater.runtime.embedded import EmbeddedHeadwater
    from schemas import IngestDocument, SearchPage

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Keep a retrieval index in sync with its sources."
)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures against a yardstick.")
app.add_typer(bench_app, name="bench")
app.add_typer(stack_app, name="stack")
app.command(name="run")(run_service)
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")
app.add_typer(migrate_app, name="migrate")
app.add_typer(connectors_app, name="connectors")
app.add_typer(webhooks_app, name="webhooks")
app.command(name="replay")(replay)
app.command(name="lag")(lag)
app.command(name="compact")(compact_command)
console = Console(stderr=True)
out = Console()

HomeOpt = Annotated[
    Path, typer.Option("--home", envvar="HEADWATER_HOME", help="state directory of the embedded runtime")
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="tenant the documents belong to")]


def _configure_logging(verbose: bool = False) -> None:
    from headwater.observability.logs import configure_logging

    configure_logging(
        service="headwater",
        verbose=verbose,
        default_format="text",  # HEADWATER_LOG_FORMAT=json for JSON lines
        quiet=("presidio-analyzer", "presidio-anonymizer", "sentence_transformers", "httpx"),
    )


@contextmanager
def _running(home: Path, **settings_overrides: object) -> Iterator[EmbeddedHeadwater]:
    from headwater.config import HeadwaterSettings
    from headwater.observability import tracing
    from headwater.runtime.embedded import EmbeddedHeadwater, build

    offline()
    tracing.configure("embedded")  # a no-op unless OTEL_EXPORTER_OTLP_ENDPOINT or HEADWATER_TRACES_FILE
    settings = HeadwaterSettings(home=home, **settings_overrides)  # type: ignore[arg-type]
    with console.status("Loading models and opening the index…"):
        runtime = EmbeddedHeadwater(build(settings))
    with runtime:
        yield runtime


def _ingest_with_progress(
    runtime: EmbeddedHeadwater, commands: Iterable[IngestDocument], *, total: int
) -> float:
    """Accept every command, then show the pipeline draining; returns the elapsed seconds."""
    started = time.perf_counter()
    base = runtime.completed
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        accepted = progress.add_task("accepted", total=total)
        indexed = progress.add_task("indexed ", total=total)
        for command in commands:
            runtime.intake.accept(command)
            progress.advance(accepted)
            progress.update(indexed, completed=runtime.completed - base)
        while runtime.completed - base < total:
            progress.update(indexed, completed=runtime.completed - base)
            time.sleep(0.2)
        progress.update(indexed, completed=total)
    runtime.wait_idle()
    return time.perf_counter() - started


def _read_commands(path: Path, *, tenant: str) -> list[IngestDocument]:
    from schemas import IngestDocument

    if path.is_file() and path.suffix == ".jsonl":
        return [
            IngestDocument.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()
        ]
    types = {
        ".txt": "text/plain",
        ".md": "text/markdown",
        ".markdown": "text/markdown",
        ".html": "text/html",
        ".htm": "text/html",
    }
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in types)
    return [
        IngestDocument(
            tenant=tenant,
            document_id=str(f.relative_to(path) if path.is_dir() else f.name),
            content_type=types.get(f.suffix.lower(), "text/plain"),
            text=f.read_text(errors="replace"),
            version=int(f.stat().st_mtime * 1000),
        )
        for f in files
    ]


def _print_page(page: SearchPage, *, show: int = 5) -> None:
    table = Table(show_header=True, header_style="bold", expand=True)
    table.add_column("#", width=2)
    table.add_column("document", overflow="fold", ratio=2)
    table.add_column("score", width=6)
    table.add_column("ranks", width=10, no_wrap=True)
    table.add_column("text", ratio=6)
    for rank, hit in enumerate(page.hits[:show], start=1):
        # Each retriever's rank for the hit, e.g. "dense 1 / sparse 3".
        found = "\n".join(f"{name} {r}" for name, r in sorted(hit.retrievers.items()))
        snippet = hit.text.replace("\n", " ")
        table.add_row(
            str(rank),
            hit.title or hit.document_id,
            f"{hit.score:.3f}",
            found,
            snippet[:220] + ("…" if len(snippet) > 220 else ""),
        )
    out.print(table)


@app.command()
def demo(
    home: Annotated[
        Path | None, typer.Option("--home", help="keep state here (default: a temporary dir)")
    ] = None,
) -> None:
    """Ingest the bundled sample corpus, then run sample queries and show what was redacted."""
    from schemas import IngestDocument, SearchRequest

    _configure_logging()
    samples = resources.files("headwater") / "samples"
    commands = [
        IngestDocument.model_validate_json(line)
        for line in (samples / "demo.jsonl").read_text().splitlines()
        if line.strip()
    ]
    queries = json.loads((samples / "queries.json").read_text())
    with (
        tempfile.TemporaryDirectory(prefix="headwater-demo-") as scratch,
        _running(home or Path(scratch)) as runtime,
    ):
        out.rule("[bold]Headwater demo: intake → PII redaction → chunking → embedding → graph → index")
        elapsed = _ingest_with_progress(runtime, commands, total=len(commands))
        stats = runtime.stats()
        out.print(
            f"Indexed {len(commands)} documents as {stats['chunks']} chunks in {elapsed:.1f} s "
            f"({len(commands) / elapsed:.1f} docs/s); {stats['dead_letters']} dead-lettered."
        )
        redacted = ", ".join(f"{kind}: {count}" for kind, count in sorted(stats["pii"].items())) or "nothing"
        out.print(f"PII redacted before anything was embedded or indexed (types and counts only): {redacted}")
        for query in queries:
            request = SearchRequest(query=query["query"], tenant=query["tenant"], top_k=5)
            page = runtime.query.search(request)
            out.rule(f"[bold]{query['query']}[/] [dim](tenant {query['tenant']}, {page.took_ms:.1f} ms)")
            if query.get("why"):
                out.print(f"[dim]{query['why']}[/]")
            _print_page(page, show=3)


@app.command()
def serve(
    home: HomeOpt = Path(".headwater"),
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port for intake and query")] = 8080,
) -> None:
    """Run the embedded runtime: intake (`POST /v1/documents`) and query (`POST /v1/search`) on one port."""
    import uvicorn

    from headwater.runtime.http_app import create_app

    _configure_logging()
    with _running(home) as runtime:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning")


@app.command()
def ingest(
    path: Annotated[
        Path, typer.Argument(help="a JSONL file of IngestDocument lines, or a file/folder of .txt/.md/.html")
    ],
    home: HomeOpt = Path(".headwater"),
    tenant: TenantOpt = "default",
) -> None:
    """Bulk-ingest documents through the full pipeline, with a progress bar."""
    _configure_logging()
    commands = _read_commands(path, tenant=tenant)
    with _running(home) as runtime:
        elapsed = _ingest_with_progress(runtime, commands, total=len(commands))
        stats = runtime.stats()
        out.print(
            f"{len(commands)} documents in {elapsed:.1f} s; {stats['chunks']} chunks; "
            f"{stats['dead_letters']} dead-lettered"
        )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    home: HomeOpt = Path(".headwater"),
    tenant: TenantOpt = "default",
    mode: Annotated[str, typer.Option(help="hybrid, dense or sparse")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print the SearchPage as JSON")] = False,
) -> None:
    """Search the embedded index."""
    from schemas import SearchMode, SearchRequest

    _configure_logging()
    with _running(home) as runtime:
        page = runtime.query.search(
            SearchRequest(query=query, tenant=tenant, mode=SearchMode(mode), top_k=top_k)
        )
    if as_json:
        out.print_json(page.model_dump_json())
    else:
        _print_page(page, show=top_k)
        out.print(f"[dim]{page.took_ms:.1f} ms[/]")


@app.command()
def redact(
    path: Annotated[
        Path | None, typer.Argument(help='JSONL of {"text": ...}; default: standard input')
    ] = None,
    tenant: TenantOpt = "default",
    batch: Annotated[int, typer.Option(help="lines redacted per batch")] = 64,
) -> None:
    """Redact JSONL text with exactly the ingest policy; prints the same JSONL with redacted text."""
    from headwater.config import HeadwaterSettings
    from services.ingest.redaction import Redactor

    _configure_logging()
    offline()
    settings = HeadwaterSettings()
    redactor = Redactor(secret=settings.pii_secret.get_secret_value().encode())
    source = path.open() if path else sys.stdin
    pending: list[dict[str, object]] = []

    def flush() -> None:
        results = redactor.redact_batch([str(row["text"]) for row in pending], tenant=tenant)
        for row, result in zip(pending, results, strict=True):
            sys.stdout.write(json.dumps({**row, "text": result.text}, ensure_ascii=False) + "\n")
        pending.clear()

    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"line {number} is not JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise typer.BadParameter(f'line {number} has no string "text" field')
        pending.append(row)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()


@app.command(name="eval")
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
    from headwater.eval import DEFAULT_MODES, parse_mode
    from headwater.evaluation import EvalOptions, run_evaluation

    _configure_logging()
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
        _running(home or Path(scratch)) as runtime,
    ):
        run_evaluation(runtime, directory, options=options, ingest=_ingest_with_progress, console=out)


@bench_app.command(name="ingest")
def bench_ingest(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl or IngestDocument JSONL")] = Path(
        "../shared/datasets/scifact/corpus.jsonl"
    ),
    limit: Annotated[int, typer.Option(help="documents to ingest")] = 400,
) -> None:
    """Documents/s and chunks/s of the embedded pipeline, per-stage time shares, and the ratio to a fixed
    yardstick: sentence-transformers all-MiniLM-L6-v2 fp32 encoding the same chunk texts at batch 32."""
    from headwater.benchmarks import bench_ingest as run

    _configure_logging()
    with (
        tempfile.TemporaryDirectory(prefix="headwater-bench-") as scratch,
        _running(Path(scratch)) as runtime,
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
    from headwater.bench_freshness import bench_freshness as run

    _configure_logging()
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
    from headwater.bench_query import run_bench_query
    from services.embedder.config import EmbedderSettings
    from services.embedder.factory import build_backend

    _configure_logging()
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
    from headwater.bench_migrate import run_bench_migrate
    from services.embedder.config import EmbedderSettings
    from services.embedder.profiles import load_profiles, resolve_profile

    _configure_logging()
    offline()
    profile = resolve_profile(model, load_profiles(EmbedderSettings().profiles_file))
    run_bench_migrate(dataset=dataset, documents=documents, queries=queries, profile=profile, console=out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
