"""`headwater bench migrate`: what a model migration costs while the index keeps serving.

On the embedded runtime with the default models: SciFact abstracts (those relevant to the first train
queries, then others up to `documents`) go through the whole pipeline; then a migration to `--model`
runs while a thread searches without pause. Printed, each beside its yardstick from the same run:
- backfill throughput (chunks/s) ÷ the target model embedding the same chunk texts directly;
- search latency p50/p99 during the backfill ÷ the same searches before it;
- nDCG@10 of both collections on the train queries (what the cutover gate compares);
- how long cutover and rollback take to apply, and whether rollback gives the old answers back.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from headwater.config import HeadwaterSettings, MigrationSettings
from headwater.evaluation import corpus_commands, load_beir
from headwater.operations import migrate
from headwater.runtime.embedded import EmbeddedHeadwater, build
from schemas import SearchRequest
from services.embedder.factory import build_profile_backend
from services.embedder.profiles import ModelProfile

TENANT = "bench"


def _latencies(
    runtime: EmbeddedHeadwater, queries: list[str], stop: threading.Event | None = None
) -> list[float]:
    """Seconds per search, cycling through `queries` once (or until `stop`)."""
    times = []
    i = 0
    while (stop is None and i < len(queries)) or (stop is not None and not stop.is_set()):
        started = time.perf_counter()
        runtime.query.search(SearchRequest(query=queries[i % len(queries)], tenant=TENANT, top_k=10))
        times.append(time.perf_counter() - started)
        i += 1
    return times


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000


def run_bench_migrate(
    *, dataset: Path, documents: int, queries: int, profile: ModelProfile, console: Console
) -> None:
    data = load_beir(dataset, split="train")
    query_ids = list(data.queries)[:queries]
    relevant = {doc for q in query_ids for doc in data.qrels[q]}
    ordered = sorted(data.corpus, key=lambda row: row["_id"] not in relevant)[:documents]
    home = Path(tempfile.mkdtemp(prefix="headwater-bench-migrate-"))
    settings = HeadwaterSettings(home=home, environment="test")
    runtime = EmbeddedHeadwater(build(settings, migration=MigrationSettings(poll_s=0.05))).start()
    try:
        console.print(f"ingesting {len(ordered)} abstracts through the pipeline…")
        subset = type(data)(corpus=ordered, queries=data.queries, qrels=data.qrels)
        for command in corpus_commands(subset, tenant=TENANT):
            runtime.intake.accept(command)
        runtime.wait_idle(timeout=3600)
        texts = [data.queries[q] for q in query_ids]
        _latencies(runtime, texts)  # warm caches
        idle = _latencies(runtime, texts) + _latencies(runtime, texts)

        store, alias = runtime.migrations, settings.collection_alias
        source = migrate.live_collection(store, alias)
        target_backend = build_profile_backend(profile)
        chunk_texts = [
            str(h.payload["text"]) for h in _scan(runtime, source.name) if h.payload.get("state") == "live"
        ]
        started = time.perf_counter()
        target_backend.embed(chunk_texts)
        direct_s = time.perf_counter() - started

        stop = threading.Event()
        during: list[float] = []
        searcher = threading.Thread(target=lambda: during.extend(_latencies(runtime, texts, stop)))
        searcher.start()
        started = time.perf_counter()
        migration = migrate.start(store, alias=alias, profile=profile, backend=target_backend)
        while not (found := store.get(migration.id)) or not found.backfill_complete:
            time.sleep(0.05)
        backfill_s = time.perf_counter() - started
        stop.set()
        searcher.join()

        eval_set = [
            migrate.EvalQuery(tenant=TENANT, query=data.queries[q], relevant=data.qrels[q]) for q in query_ids
        ]
        scores = migrate.compare(runtime.query.search, eval_set, source=source.name, target=found.target.name)
        before = [runtime.query.search(SearchRequest(query=t, tenant=TENANT)).hits for t in texts[:20]]
        started = time.perf_counter()
        _, found = migrate.cutover(store, found, lag=0, scores=scores, force=True)
        migrate.wait_applied(store, found, timeout_s=60)
        cutover_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        found = migrate.wait_applied(store, migrate.command(store, found, "rollback"), timeout_s=60)
        rollback_ms = (time.perf_counter() - started) * 1000
        after = [runtime.query.search(SearchRequest(query=t, tenant=TENANT)).hits for t in texts[:20]]
        restored = before == after
    finally:
        runtime.stop()

    chunks = len(chunk_texts)
    table = Table(title=f"model migration {source.model_id} → {target_backend.model_id}, {chunks} chunks")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("yardstick (same run)", justify="right")
    table.add_column("ratio", justify="right")
    backfill_rate, direct_rate = chunks / backfill_s, chunks / direct_s
    table.add_row(
        "backfill chunks/s",
        f"{backfill_rate:.0f}",
        f"{direct_rate:.0f} (embedding alone)",
        f"{backfill_rate / direct_rate:.2f}×",
    )
    for q in (50, 99):
        table.add_row(
            f"search p{q} during backfill (ms)",
            f"{_pct(during, q):.1f}",
            f"{_pct(idle, q):.1f} (before)",
            f"{_pct(during, q) / _pct(idle, q):.2f}×",
        )
    table.add_row(
        f"nDCG@10, {scores.queries} train queries",
        f"{scores.target_score:.4f} (target)",
        f"{scores.source_score:.4f} (source)",
        f"{scores.target_score - scores.source_score:+.4f}",
    )
    table.add_row("cutover applied (ms)", f"{cutover_ms:.0f}", "", "")
    table.add_row("rollback applied (ms)", f"{rollback_ms:.0f}", "", "")
    table.add_row("rollback gives the old answers", "yes" if restored else "NO", "", "")
    console.print(table)
    console.print(f"searches: {len(idle)} before, {len(during)} during the backfill ({backfill_s:.1f} s)")


def _scan(runtime: EmbeddedHeadwater, collection: str) -> list:  # type: ignore[type-arg]
    hits, cursor = [], None
    while True:
        page, cursor = runtime.parts.index.scan(collection, after=cursor, limit=512)
        hits += page
        if cursor is None:
            return hits
