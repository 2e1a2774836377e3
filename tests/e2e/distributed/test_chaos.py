"""SIGKILL one process of every stage mid-stream, restart it, and prove nothing was lost, duplicated
or left stale (reliability test plan, rows 1, 4 and 18; harness conventions of §7). The chunker and
embedder run two processes each, so those kills also move partitions between group members."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from headwater.stack.pipeline import PIPELINE_SERVICES, LocalPipeline
from tests.e2e.distributed.audit import DocKey, Latest, audit, snapshot
from tests.e2e.distributed.conftest import pipeline_lag, wait_for

pytestmark = pytest.mark.slow

TENANTS = ("acme", "globex")


def _changes(count: int, rng: random.Random) -> list[dict[str, object]]:
    """Creates for every document, then updates and deletes of some, each with a unique word."""
    docs = [(TENANTS[i % 2], f"doc-{i:04d}") for i in range(count)]
    changes: list[dict[str, object]] = [
        {
            "tenant": t,
            "document_id": d,
            "version": 1,
            "text": f"Report {d} mentions token u{d}v1 twice: u{d}v1.",
        }
        for t, d in docs
    ]
    for t, d in rng.sample(docs, count // 3):
        changes.append({"tenant": t, "document_id": d, "version": 2, "text": f"Revised {d}: token u{d}v2."})
    for t, d in rng.sample(docs, count // 6):
        changes.append({"tenant": t, "document_id": d, "version": 3, "op": "delete"})
    return changes


class Poster(threading.Thread):
    """Posts changes at a steady rate; a change counts as accepted only on 202 (503s and a dead intake
    are retried, as a webhook sender would)."""

    def __init__(self, url: str, changes: list[dict[str, object]], rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.changes, self.rate = url, changes, rate
        self.accepted: dict[DocKey, Latest] = {}
        self.sent = 0
        self.retries = 0

    def run(self) -> None:
        with httpx.Client(timeout=15) as client:
            for change in self.changes:
                while True:
                    try:
                        response = client.post(f"{self.url}/v1/documents", json=change)
                        if response.status_code == 202:
                            break
                        assert response.status_code == 503, response.text
                    except httpx.HTTPError:
                        pass
                    self.retries += 1
                    time.sleep(0.3)
                key = (str(change["tenant"]), str(change["document_id"]))
                version = int(str(change["version"]))
                if key not in self.accepted or self.accepted[key].version < version:
                    self.accepted[key] = Latest(version, change.get("op") == "delete")
                self.sent += 1
                time.sleep(1 / self.rate)


def test_sigkill_of_each_stage_mid_stream_loses_nothing(make_pipeline: Callable[..., LocalPipeline]) -> None:
    pipeline = make_pipeline(partitions=3)
    pipeline.start_all()
    for replica in ("chunker#2", "embedder#2"):  # two consumers in these groups: kills also rebalance
        pipeline.start(replica)
    changes = _changes(240, random.Random(7))
    poster = Poster(pipeline.url("ingest"), changes, rate=25)
    poster.start()

    kills: list[str] = []
    for step, service in enumerate(PIPELINE_SERVICES, start=1):
        # Spread the kills over the stream: each one lands while changes are in flight.
        wait_for(lambda step=step: poster.sent >= step * len(changes) // 7, timeout_s=300, what="progress")
        pipeline.restart(service, sig=signal.SIGKILL)
        kills.append(service)
    poster.join(timeout=600)
    assert not poster.is_alive()

    wait_for(lambda: pipeline_lag(pipeline) == 0, timeout_s=300, what="every stage to catch up")
    pipeline.kill("index-node", signal.SIGTERM)  # releases the embedded index so we can read it
    points = snapshot(pipeline.home / "index", "headwater_chunks", TENANTS)
    result = audit(points, poster.accepted)
    print(f"\nchaos: killed {kills}; changes={len(changes)} intake_retries={poster.retries}; {result.line()}")
    assert result.documents == 240
    assert result.clean, result
