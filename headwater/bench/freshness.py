"""`headwater bench freshness`: time from intake acknowledgement to searchable, on the distributed
pipeline (one process per service, a real local broker), for a burst and for a steady rate.

Phases, each with its own documents:
1. capacity: a burst posted as fast as intake accepts it; maximum throughput = documents ÷ time until
   every stage has committed them (consumer lag back to 0);
2. steady: documents posted at half that throughput, evenly spaced;
3. burst: the same number posted at once.
Freshness of a document = the index's `indexed_at` of its chunks − the moment the client got its 202.
`indexed_at` is stamped when the indexer plans the write, a few ms before the flush and the commit.

Baseline, measured in the same run on the same documents and models: the embedded runtime (one
process, in-process queues) taking the capacity burst; the ratios compare the two.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from headwater.bench.ingest import load_commands
from schemas import IngestDocument

TENANT = "bench"


@dataclass
class Phase:
    name: str
    posted_at: dict[str, float] = field(default_factory=dict)  # document id -> 202 received (epoch s)
    started: float = 0.0
    drained: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return len(self.posted_at) / max(1e-9, self.drained - self.started)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _post_all(
    url: str, commands: list[IngestDocument], phase: Phase, *, rate: float | None, workers: int = 8
) -> None:
    """Post every command; with `rate`, evenly spaced from one thread, else from `workers` threads."""
    lock = threading.Lock()
    queue = list(commands)

    def post(client: httpx.Client, command: IngestDocument) -> None:
        body = command.model_dump(mode="json", exclude_none=True)
        while True:
            response = client.post(f"{url}/v1/documents", json=body)
            if response.status_code == 202:
                with lock:
                    phase.posted_at[command.document_id] = time.time()
                return
            if response.status_code != 503:
                raise RuntimeError(f"intake refused a bench document: {response.status_code} {response.text}")
            time.sleep(float(response.headers.get("retry-after", "1")))

    phase.started = time.time()
    if rate is not None:
        with httpx.Client(timeout=60) as client:
            for i, command in enumerate(queue):
                due = phase.started + i / rate
                time.sleep(max(0.0, due - time.time()))
                post(client, command)
        return

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    command = queue.pop(0)
                post(client, command)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _wait_drained(lag: Callable[[], int], *, timeout_s: float = 900.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lag() == 0:
            return time.time()
        time.sleep(0.2)
    raise TimeoutError("the pipeline did not drain in time")


def _indexed_at(points: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Latest `indexed_at` of each document's live chunks (all chunks of a version share one write)."""
    out: dict[str, float] = {}
    for payload in points.values():
        if payload.get("state") != "live":
            continue
        stamp = datetime.fromisoformat(str(payload["indexed_at"])).timestamp()
        doc = str(payload["document_id"])
        out[doc] = max(out.get(doc, 0.0), stamp)
    return out


def _rss_mib(pid: int, field: str = "VmHWM") -> float:
    """A process's resident set from /proc: VmHWM (the kernel's high-water mark) or VmRSS (now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _snapshot(index_dir: Path, alias: str) -> dict[str, dict[str, Any]]:
    from services.indexer.adapters.edge import EdgeIndex
    from services.indexer.ports import IndexFilter

    index = EdgeIndex(index_dir)
    try:
        collection = index.resolve_alias(alias)
        if collection is None:
            return {}
        hits = index.scroll(collection, filter=IndexFilter(tenant=TENANT), limit=10_000_000)
        return {h.id: dict(h.payload) for h in hits}
    finally:
        index.close()


def _embedded_baseline(commands: list[IngestDocument], scratch: Path, database_url: str) -> Phase:
    from headwater.config import HeadwaterSettings
    from headwater.runtime.embedded import EmbeddedHeadwater, build

    phase = Phase("embedded burst")
    settings = HeadwaterSettings(
        home=scratch / "embedded", database_url=database_url, database_schema="bench_base"
    )
    with EmbeddedHeadwater(build(settings)) as runtime:
        warm = [c.model_copy(update={"document_id": f"warm-{c.document_id}"}) for c in commands[:8]]
        for command in warm:
            runtime.intake.accept(command)
        runtime.wait_idle()
        phase.started = time.time()
        for command in commands:
            runtime.intake.accept(command)
            phase.posted_at[command.document_id] = time.time()
        runtime.wait_idle(timeout=900)
        phase.drained = time.time()
    indexed = _indexed_at(_snapshot(settings.index_dir, settings.collection_alias))
    phase.latencies = [indexed[d] - t for d, t in phase.posted_at.items() if d in indexed]
    return phase


def bench_freshness(*, corpus: Path, documents: int, partitions: int, console: Console) -> None:
    from headwater.kernel.postgres import embedded_postgres_url
    from headwater.stack.kafka import KafkaBroker
    from headwater.stack.pipeline import PIPELINE_SERVICES, LocalPipeline
    from headwater.stack.topics import provision_topics

    pool = load_commands(corpus, limit=documents * 3 + 8, tenant=TENANT)
    if len(pool) < documents * 3 + 8:
        raise SystemExit(f"{corpus} has {len(pool)} documents; the bench needs {documents * 3 + 8}")
    warmup, capacity_docs = pool[:8], pool[8 : 8 + documents]
    steady_docs, burst_docs = pool[8 + documents : 8 + 2 * documents], pool[8 + 2 * documents :]
    phases = {name: Phase(name) for name in ("capacity burst", "steady at ½ max", "burst")}

    with tempfile.TemporaryDirectory(prefix="headwater-freshness-") as tmp:
        scratch = Path(tmp)
        database_url = embedded_postgres_url(scratch / "pg")
        broker = KafkaBroker()
        broker.fetch_jars()
        with broker.start(scratch / "kafka"):
            asyncio.run(provision_topics(broker.bootstrap_servers, partitions=partitions))
            with LocalPipeline(
                home=scratch / "pipeline",
                bootstrap_servers=broker.bootstrap_servers,
                database_url=database_url,
                env={"HEADWATER_ENVIRONMENT": "local"},
            ) as pipeline:
                with console.status("Starting the services (models load once per process)…"):
                    pipeline.start_all(timeout_s=600)
                url = pipeline.url("ingest")
                with console.status("Warming up…"):
                    _post_all(url, warmup, Phase("warm-up"), rate=None)
                    _wait_drained(pipeline.lag)
                capacity = phases["capacity burst"]
                with console.status(f"Capacity: {documents} documents at once…"):
                    _post_all(url, capacity_docs, capacity, rate=None)
                    capacity.drained = _wait_drained(pipeline.lag)
                before_burst = {n: _rss_mib(pipeline.services[n].pid) for n in PIPELINE_SERVICES}
                steady = phases["steady at ½ max"]
                rate = capacity.throughput / 2
                with console.status(f"Steady: {documents} documents at {rate:.1f}/s…"):
                    _post_all(url, steady_docs, steady, rate=rate)
                    steady.drained = _wait_drained(pipeline.lag)
                burst = phases["burst"]
                with console.status(f"Burst: {documents} documents at once…"):
                    _post_all(url, burst_docs, burst, rate=None)
                    burst.drained = _wait_drained(pipeline.lag)
                rss = {name: _rss_mib(pipeline.services[name].pid) for name in PIPELINE_SERVICES}
                pipeline.stop_all()
                indexed = _indexed_at(_snapshot(pipeline.home / "index", "headwater_chunks"))
        for phase in phases.values():
            phase.latencies = [indexed[d] - t for d, t in phase.posted_at.items() if d in indexed]
        with console.status("Baseline: the embedded runtime on the capacity documents…"):
            baseline = _embedded_baseline(capacity_docs, scratch, database_url)

    table = Table(title=f"Freshness: 202 → searchable ({documents} SciFact abstracts per phase)")
    for column in ("phase", "docs", "docs/s", "p50 s", "p95 s", "p99 s", "max s", "missing"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    for phase in [*phases.values(), baseline]:
        lat = phase.latencies
        table.add_row(
            phase.name,
            str(len(phase.posted_at)),
            f"{phase.throughput:.2f}",
            *(f"{percentile(lat, q):.2f}" for q in (50, 95, 99)),
            f"{max(lat) if lat else float('nan'):.2f}",
            str(len(phase.posted_at) - len(lat)),
        )
    console.print(table)
    steady = phases["steady at ½ max"]
    console.print(
        f"max throughput {capacity.throughput:.2f} docs/s = {capacity.throughput / baseline.throughput:.2f}× "
        f"the embedded runtime's {baseline.throughput:.2f} docs/s; steady rate {rate:.2f} docs/s; "
        f"steady p99 {percentile(steady.latencies, 99):.2f} s (target ≤ 2 s), "
        f"median ratio to embedded burst p50: "
        f"{statistics.median(steady.latencies) / max(1e-9, statistics.median(baseline.latencies)):.2f}"
    )
    console.print(
        "peak RSS MiB after the capacity burst → after the steady run and the second burst "
        "(flat = bounded memory): "
        + ", ".join(f"{name} {before_burst[name]:.0f} → {mib:.0f}" for name, mib in rss.items())
    )
