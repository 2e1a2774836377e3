"""`headwater bench ingest`: pipeline throughput against a fixed yardstick measured in the same run.

The yardstick never changes: sentence-transformers all-MiniLM-L6-v2, fp32, batch 32, encoding the
very chunk texts the pipeline produced. `ratio = pipeline chunks/s ÷ yardstick chunks/s` therefore
rises with any real speed-up of the pipeline and is comparable across machines."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from headwater.runtime.embedded import EmbeddedHeadwater
from schemas import IngestDocument, SourceKind, SourceRef
from services.indexer.ports import IndexFilter

BENCH_TENANT = "bench"
WARMUP_TENANT = "warmup"


def load_commands(corpus: Path, *, limit: int, tenant: str) -> list[IngestDocument]:
    """BEIR `corpus.jsonl` rows (`_id`, `title`, `text`) or `IngestDocument` lines."""
    commands: list[IngestDocument] = []
    with corpus.open() as lines:
        for line in lines:
            if len(commands) >= limit:
                break
            row = json.loads(line)
            if "_id" in row:
                commands.append(
                    IngestDocument(
                        tenant=tenant,
                        document_id=row["_id"],
                        version=1,
                        title=row.get("title") or None,
                        text=row["text"],
                        source=SourceRef(kind=SourceKind.FILE, name=corpus.name),
                    )
                )
            else:
                commands.append(IngestDocument.model_validate({**row, "tenant": tenant}))
    return commands


def yardstick_chunks_per_second(texts: list[str]) -> float:
    """sentence-transformers all-MiniLM-L6-v2, fp32, batch 32, on this machine's CPU."""
    from sentence_transformers import SentenceTransformer

    from headwater.kernel.model_files import minilm_path

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    model.encode(texts[:32], batch_size=32)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=32)
    return len(texts) / (time.perf_counter() - started)


def bench_ingest(
    runtime: EmbeddedHeadwater, *, corpus: Path, limit: int, console: Console
) -> dict[str, float]:
    warmup = load_commands(corpus, limit=8, tenant=WARMUP_TENANT)
    for command in warmup:
        runtime.intake.accept(command)
    runtime.wait_idle()
    commands = load_commands(corpus, limit=limit, tenant=BENCH_TENANT)
    busy_before = {w.stage: w.stats.busy_seconds for w in runtime.workers}
    chunks_before = runtime.stats()["chunks"]
    started = time.perf_counter()
    for command in commands:
        runtime.intake.accept(command)
    runtime.wait_idle()
    elapsed = time.perf_counter() - started
    chunks = runtime.stats()["chunks"] - chunks_before
    busy = {w.stage: w.stats.busy_seconds - busy_before[w.stage] for w in runtime.workers}

    collection = runtime.collection
    points = runtime.parts.index.scroll(
        collection, filter=IndexFilter(tenant=BENCH_TENANT), limit=chunks + 100
    )
    texts = [str(p.payload["text"]) for p in points]
    yardstick = yardstick_chunks_per_second(texts)

    figures = {
        "documents": float(len(commands)),
        "chunks": float(chunks),
        "seconds": elapsed,
        "docs_per_s": len(commands) / elapsed,
        "chunks_per_s": chunks / elapsed,
        "yardstick_chunks_per_s": yardstick,
        "ratio": (chunks / elapsed) / yardstick,
    }
    table = Table(title=f"headwater bench ingest: {len(commands)} documents from {corpus.name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("documents/s", f"{figures['docs_per_s']:.2f}")
    table.add_row("chunks/s (pipeline)", f"{figures['chunks_per_s']:.2f}")
    table.add_row("chunks/s (yardstick: ST fp32, batch 32)", f"{yardstick:.2f}")
    table.add_row("[bold]ratio", f"[bold]{figures['ratio']:.3f}")
    total_busy = sum(busy.values()) or 1.0
    for stage, seconds in busy.items():
        table.add_row(f"stage time share: {stage}", f"{seconds / total_busy:.1%} ({seconds:.1f} s)")
    console.print(table)
    console.print(
        f"backend: {runtime.parts.backend.model_id}; stage threads overlap, "
        "so busy seconds sum to more than the wall time."
    )
    return figures
