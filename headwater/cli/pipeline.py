"""Commands that run the pipeline: the demo, intake of files, search, the HTTP server, redaction alone,
and one service of the distributed runtime."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from headwater.cli.common import (
    HomeOpt,
    TenantOpt,
    configure_logging,
    ingest_with_progress,
    out,
    print_page,
    running,
)
from headwater.kernel.model_files import offline
from headwater.runtime.distributed import SERVICES

if TYPE_CHECKING:
    from schemas import IngestDocument


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


def demo(
    home: Annotated[
        Path | None, typer.Option("--home", help="keep state here (default: a temporary dir)")
    ] = None,
) -> None:
    """Ingest the bundled sample corpus, then run sample queries and show what was redacted."""
    from schemas import IngestDocument, SearchRequest

    configure_logging()
    samples = resources.files("headwater") / "samples"
    commands = [
        IngestDocument.model_validate_json(line)
        for line in (samples / "demo.jsonl").read_text().splitlines()
        if line.strip()
    ]
    queries = json.loads((samples / "queries.json").read_text())
    with (
        tempfile.TemporaryDirectory(prefix="headwater-demo-") as scratch,
        running(home or Path(scratch)) as runtime,
    ):
        out.rule("[bold]Headwater demo: intake → PII redaction → chunking → embedding → graph → index")
        elapsed = ingest_with_progress(runtime, commands, total=len(commands))
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
            print_page(page, show=3)


def serve(
    home: HomeOpt = Path(".headwater"),
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port for intake and query")] = 8080,
) -> None:
    """Run the embedded runtime: intake (`POST /v1/documents`) and query (`POST /v1/search`) on one port."""
    import uvicorn

    from headwater.runtime.embedded.http_app import create_app

    configure_logging()
    with running(home) as runtime:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning")


def ingest(
    path: Annotated[
        Path, typer.Argument(help="a JSONL file of IngestDocument lines, or a file/folder of .txt/.md/.html")
    ],
    home: HomeOpt = Path(".headwater"),
    tenant: TenantOpt = "default",
) -> None:
    """Bulk-ingest documents through the full pipeline, with a progress bar."""
    configure_logging()
    commands = _read_commands(path, tenant=tenant)
    with running(home) as runtime:
        elapsed = ingest_with_progress(runtime, commands, total=len(commands))
        stats = runtime.stats()
        out.print(
            f"{len(commands)} documents in {elapsed:.1f} s; {stats['chunks']} chunks; "
            f"{stats['dead_letters']} dead-lettered"
        )


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

    configure_logging()
    with running(home) as runtime:
        page = runtime.query.search(
            SearchRequest(query=query, tenant=tenant, mode=SearchMode(mode), top_k=top_k)
        )
    if as_json:
        out.print_json(page.model_dump_json())
    else:
        print_page(page, show=top_k)
        out.print(f"[dim]{page.took_ms:.1f} ms[/]")


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

    configure_logging()
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


Service = StrEnum("Service", {name.replace("-", "_").upper(): name for name in SERVICES})  # type: ignore[misc]


def run_service(
    service: Annotated[Service, typer.Argument(help="which service this process runs")],
    host: Annotated[str, typer.Option(help="HTTP bind address (ingest, query, index-node)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (ingest, query, index-node)")] = 8080,
    metrics_port: Annotated[
        int, typer.Option(envvar="HEADWATER_METRICS_PORT", help="Prometheus /metrics port; 0 = off")
    ] = 9400,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run one service on the Kafka cluster named by HEADWATER_KAFKA_BOOTSTRAP_SERVERS."""
    from headwater.kernel.model_files import offline
    from headwater.observability import tracing
    from headwater.observability.logs import configure_logging
    from headwater.runtime.distributed import metrics
    from headwater.runtime.distributed.bootstrap import build_service

    configure_logging(
        service=service.value,
        verbose=verbose,
        default_format="json",  # a service's output goes to a log collector; HEADWATER_LOG_FORMAT=text
        text_format=f"%(asctime)s %(levelname)s {service.value} %(name)s: %(message)s",
        quiet=(
            "presidio-analyzer",
            "presidio-anonymizer",
            "sentence_transformers",
            "httpx",
            "aiokafka",
            "faststream",
        ),
    )
    tracing.configure(service.value)  # OTEL_* variables; a no-op when no exporter is configured
    offline()
    process = build_service(service.value)
    metrics.serve_metrics(metrics_port)
    asyncio.run(process.serve(host=host, port=port))
