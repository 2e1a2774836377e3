"""A model migration on the distributed runtime: the migration consumer re-reads the compacted
enriched-chunk topic in its own group, the embedders follow the readers' model after cutover, and
queries keep working through start, backfill, cutover, rollback and finish. The two models are two
configurations of the hashing backend (64 and 32 dimensions), so the test is about the mechanics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from headwater.stack.pipeline import LocalPipeline
from tests.e2e.distributed.conftest import post_document, wait_for

DOCS = 24
WORDS = ["heron", "otter", "willow", "granite", "lantern", "saffron", "harbour", "meadow"]


def _search(pipeline: LocalPipeline, query: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{pipeline.url('index-node')}/v1/search",
        json={"tenant": "acme", "query": query, "top_k": 10, **extra},
        timeout=30,
    )
    response.raise_for_status()
    page: dict[str, Any] = response.json()
    return page


def _ranking(page: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [(h["document_id"], h["chunk_id"], h["score"]) for h in page["hits"]]


def _status(pipeline: LocalPipeline) -> dict[str, Any]:
    done = pipeline.cli("migrate", "status", "--json")
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


class QueryLoop(threading.Thread):
    def __init__(self, pipeline: LocalPipeline) -> None:
        super().__init__(daemon=True)
        self.pipeline = pipeline
        self.halt = threading.Event()
        self.expected: str | None = None
        self.failures: list[str] = []
        self.answered: list[tuple[str | None, str | None]] = []

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            expected = self.expected
            try:
                page = _search(self.pipeline, f"{WORDS[i % len(WORDS)]} notes")
                self.answered.append((expected, page["index"]))
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            i += 1


def test_migration_through_kafka_under_query_load(
    make_pipeline: Callable[..., LocalPipeline], tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"hashing-d32": {"backend": "hashing", "dimensions": 32}}))
    pipeline = make_pipeline(
        env={"HEADWATER_EMBEDDER_PROFILES_FILE": str(profiles), "HEADWATER_MIGRATION_POLL_S": "0.2"}
    )
    pipeline.start_all()
    for i in range(DOCS):
        text = f"Field notes {i}: the {WORDS[i % len(WORDS)]} by the {WORDS[(i + 3) % len(WORDS)]}."
        assert (
            post_document(
                pipeline, {"tenant": "acme", "document_id": f"doc-{i}", "version": 1, "text": text}
            ).status_code
            == 202
        )
    wait_for(
        lambda: pipeline.lag() == 0 and len(_search(pipeline, "field notes", top_k=50)["hits"]) >= DOCS,
        what="the corpus",
    )

    source = _search(pipeline, "heron")["index"]
    loop = QueryLoop(pipeline)
    loop.expected = source
    loop.start()
    started = pipeline.cli("migrate", "start", "--model", "hashing-d32")
    assert started.returncode == 0, started.stderr
    status = _status(pipeline)
    target = status["target"]["collection"]
    assert status["source"]["collection"] == source and "d32" in target

    # Live changes during the backfill reach both collections.
    post_document(
        pipeline,
        {"tenant": "acme", "document_id": "doc-1", "version": 2, "text": "Revised: the kestrel hovers."},
    )
    post_document(pipeline, {"tenant": "acme", "document_id": "doc-2", "version": 2, "op": "delete"})
    wait_for(lambda: pipeline.lag() == 0 and _status(pipeline)["lag"] == 0, what="the backfill to catch up")
    caught_up = _status(pipeline)
    # Every record of the compacted topic read: at least the latest of each document.
    assert caught_up["backfilled"] == caught_up["total"] >= DOCS, caught_up

    def documents(index: str) -> set[str]:
        return {
            h["document_id"]
            for h in _search(pipeline, "field notes revised kestrel", top_k=50, index=index)["hits"]
        }

    wait_for(
        lambda: documents(target) == documents(source), what="both collections to hold the same documents"
    )
    assert "doc-1" in documents(target) and "doc-2" not in documents(target)
    kestrel = _search(pipeline, "kestrel hovers", index=target)
    assert kestrel["hits"][0]["document_id"] == "doc-1" and kestrel["index"] == target

    eval_set = tmp_path / "eval.json"
    eval_set.write_text(json.dumps([{"tenant": "acme", "query": "kestrel hovers", "relevant": ["doc-1"]}]))
    compared = pipeline.cli(
        "migrate", "compare", "--eval-set", str(eval_set), "--url", pipeline.url("index-node"), "--json"
    )
    assert compared.returncode == 0, compared.stderr
    scores = json.loads(compared.stdout)
    assert scores["queries"] == 1 and 0 <= scores["target"] <= 1

    queries = [f"{w} notes" for w in WORDS]
    before = [_ranking(_search(pipeline, q)) for q in queries]
    loop.expected = None
    cut = pipeline.cli(
        "migrate", "cutover", "--eval-set", str(eval_set), "--url", pipeline.url("index-node"), "--force"
    )
    assert cut.returncode == 0, cut.stderr
    loop.expected = target
    assert {_search(pipeline, q)["index"] for q in queries} == {target}

    loop.expected = None
    assert pipeline.cli("migrate", "rollback", "--note", "checking").returncode == 0
    loop.expected = source
    assert [_ranking(_search(pipeline, q)) for q in queries] == before

    loop.expected = None
    assert (
        pipeline.cli(
            "migrate", "cutover", "--eval-set", str(eval_set), "--url", pipeline.url("index-node"), "--force"
        ).returncode
        == 0
    )
    loop.expected = target
    # The embedders now embed with the target's model: a new change goes into the target as it is, and
    # is re-embedded for the source (still kept for rollback).
    post_document(
        pipeline,
        {"tenant": "acme", "document_id": "late", "version": 1, "text": "A late note on the pelican."},
    )
    wait_for(
        lambda: any(h["document_id"] == "late" for h in _search(pipeline, "pelican", index=source)["hits"]),
        what="the late note in the source",
    )
    assert any(h["document_id"] == "late" for h in _search(pipeline, "pelican")["hits"])

    loop.expected = None
    assert pipeline.cli("migrate", "finish").returncode == 0
    loop.expected = target
    status = _status(pipeline)
    assert status["state"] == "finished" and status["applied_state"] == "finished"
    gone = httpx.post(
        f"{pipeline.url('index-node')}/v1/search",
        json={"tenant": "acme", "query": "x", "index": source},
        timeout=30,
    )
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("application/problem+json")
    loop.halt.set()
    loop.join(timeout=30)

    assert loop.failures == []
    checked = [(e, a) for e, a in loop.answered if e is not None]
    assert len(checked) > 20 and [p for p in checked if p[0] != p[1]] == []
    assert {a for _, a in checked} == {source, target}
    decisions = status["decisions"]
    assert [d["command"] for d in decisions] == ["cutover", "rollback", "cutover", "finish"]
    assert decisions[0]["forced"] in (True, False) and "source_score" in decisions[0]
    assert all(pipeline.alive().values()), pipeline.alive()
