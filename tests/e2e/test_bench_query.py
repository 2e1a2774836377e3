"""`headwater bench query` end to end at a small size: it builds the index, caches it, and prints every
mode's latency columns beside the exact yardstick. No timing is asserted: figures belong to the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from headwater.cli import app

runner = CliRunner()


def _dataset(folder: Path) -> Path:
    """A few SciFact-shaped abstracts and queries (the command reads `corpus.jsonl` and the train split)."""
    folder.mkdir()
    topics = ["aspirin and heart attacks", "coffee and sleep", "exercise and memory", "vitamin D and bones"]
    corpus = [
        {
            "_id": str(n),
            "title": f"Study {n} of {topic}",
            "text": f"We studied {topic} in {100 + n} adults. The effect was small. Larger trials are "
            f"needed. Participants were followed for {n + 1} years. Adherence was high in every arm.",
        }
        for n, topic in enumerate(topics * 5)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    queries = [{"_id": f"q{n}", "text": f"does {topic} matter"} for n, topic in enumerate(topics)]
    (folder / "queries-train.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels-train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\t{n}\t1\n" for n in range(len(topics)))
    )
    return folder


def test_bench_query_prints_every_mode_against_the_yardstick_and_reuses_its_index(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "scifact")
    cache = tmp_path / "cache"
    args = ["bench", "query", "--dataset", str(dataset), "--chunks", "600", "--real-documents", "12"]
    args += ["--tenants", "3", "--cache-dir", str(cache), "--concurrency", "1", "--concurrency", "4"]
    env = {"HEADWATER_EMBEDDER_BACKEND": "hashing", "COLUMNS": "200"}

    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "Synthesising and writing 600 chunks" in first.output
    for column in ("mode", "p50", "p95", "p99", "QPS", "p99÷exact"):
        assert column in first.output
    rows = {line.split("│")[1].strip() for line in first.output.splitlines() if line.count("│") > 8}
    assert rows >= {"exact", "dense", "sparse", "hybrid", "hybrid-rrf"}
    assert "Query embedding (hashing" in first.output
    assert "Dense recall@10 of the engine against the exact yardstick: 1.000" in first.output

    (built,) = cache.iterdir()
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["live_chunks"] == 600
    assert manifest["soft_deleted_chunks"] > 0
    visible = np.load(built / "visible.npz")
    assert len(visible["ids"]) == 600 and len(set(visible["ids"].tolist())) == 600

    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 0, again.output
    assert "Using the cached index" in again.output
