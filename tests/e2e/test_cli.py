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
