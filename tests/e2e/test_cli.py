"""The command line: `redact` applies the ingest policy to JSONL; `eval` scores a BEIR folder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from headwater.cli import app

runner = CliRunner()


def test_redact_rewrites_only_the_text_of_each_line() -> None:
    lines = [
        {"id": 1, "text": "Please call Maria Gonzalez at (415) 555-0142 about the invoice."},
        {"id": 2, "text": "Nothing personal in this sentence."},
    ]
    result = runner.invoke(
        app, ["redact", "--tenant", "acme"], input="\n".join(json.dumps(x) for x in lines) + "\n"
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert "555-0142" not in rows[0]["text"]
    assert "Gonzalez" not in rows[0]["text"]
    assert "<PERSON_" in rows[0]["text"]
    assert rows[1]["text"] == lines[1]["text"]


def test_redact_refuses_a_line_without_text() -> None:
    result = runner.invoke(app, ["redact"], input='{"body": "x"}\n')
    assert result.exit_code != 0
    assert "text" in result.output


def _beir(folder: Path) -> Path:
    corpus = [
        ("d1", "Aspirin and heart attacks", "Low-dose aspirin lowers the risk of myocardial infarction."),
        ("d2", "Coffee and sleep", "Caffeine taken late in the day shortens sleep."),
        ("d3", "Exercise and memory", "Aerobic exercise improves memory in older adults."),
        ("d4", "Vitamin D", "Vitamin D supplements do not prevent fractures in healthy adults."),
    ]
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in corpus)
    )
    queries = [("q1", "does aspirin prevent heart attacks"), ("q2", "caffeine effect on sleep")]
    (folder / "queries-dev.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries)
    )
    (folder / "qrels-dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return folder


def test_eval_ingests_through_the_pipeline_scores_and_writes_a_trec_run(
    postgres_url: str, tmp_path: Path
) -> None:
    dataset = _beir(tmp_path / "mini")
    run_file = tmp_path / "run.trec"
    env = {
        "HEADWATER_DATABASE_URL": postgres_url,
        "HEADWATER_DATABASE_SCHEMA": f"cli_{uuid.uuid4().hex[:8]}",
        "HEADWATER_EMBEDDER_BACKEND": "hashing",
    }
    args = [
        "eval",
        str(dataset),
        "--split",
        "dev",
        "--mode",
        "sparse",
        "--run-out",
        str(run_file),
        "--markdown",
    ]
    result = runner.invoke(app, [*args, "--home", str(tmp_path / "home")], env=env)
    assert result.exit_code == 0, result.output
    assert "| sparse |" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("| sparse |"))
    ndcg = float(row.split("|")[2])
    assert ndcg == 1.0  # both queries share distinctive words with their one relevant document
    first = run_file.read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "headwater-sparse"


def test_eval_compares_modes_over_one_index_and_writes_runs_and_the_readme_table(
    postgres_url: str, tmp_path: Path
) -> None:
    dataset = _beir(tmp_path / "mini")
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\n<!-- eval-table -->\nold table\n<!-- /eval-table -->\n\nAfter.\n")
    env = {
        "HEADWATER_DATABASE_URL": postgres_url,
        "HEADWATER_DATABASE_SCHEMA": f"cli_{uuid.uuid4().hex[:8]}",
        "HEADWATER_EMBEDDER_BACKEND": "hashing",
    }
    home = tmp_path / "home"
    modes = ["dense", "sparse", "hybrid", "hybrid-rrf+graph", "hybrid+rerank"]
    args = ["eval", str(dataset), "--split", "dev", "--home", str(home), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(
        app, [*args, *(x for m in modes for x in ("--mode", m)), "--readme", str(readme)], env=env
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "dense.trec",
        "hybrid-rrf+graph.trec",
        "hybrid.trec",
        "sparse.trec",
    ]
    text = readme.read_text()
    assert text.startswith("# Project\n\n<!-- eval-table -->\n`headwater eval ")
    assert text.endswith("<!-- /eval-table -->\n\nAfter.\n") and "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "nDCG" not in line]
    assert [r.split("|")[1].strip() for r in rows] == modes[:4]
    assert "`hybrid+rerank`, no reranker configured" in text
    assert "4 documents became 4 chunks" in text

    # A second run over the same home queries the index as it is, without ingesting again.
    again = runner.invoke(
        app, [*args, "--skip-ingest", "--mode", "sparse", "--queries", "1", "--markdown"], env=env
    )
    assert again.exit_code == 0, again.output
    assert "Ingested" not in again.stdout
    row = next(line for line in again.stdout.splitlines() if line.startswith("| sparse |"))
    assert float(row.split("|")[2]) == 1.0 and row.split("|")[6].strip() == "1"
    bad = runner.invoke(app, ["eval", str(dataset), "--mode", "hybrid+magic"], env=env)
    assert bad.exit_code != 0 and "magic" in bad.output
