"""The distributed runtime end to end: every service a real `headwater run` process on a real Kafka
broker (KRaft, from the project's launcher) and real Postgres. Topology: ingest, chunker, embedder and
graph-builder processes plus one index node (indexer + query over the embedded Qdrant-edge engine).
The embedding model is the deterministic hashing backend, so the tests are about delivery, not models.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.stack.kafka import KafkaBroker
from headwater.stack.pipeline import LocalPipeline
from headwater.stack.topics import provision_topics
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def make_pipeline(
    kafka_broker: KafkaBroker, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LocalPipeline]]:
    """Pipelines with their own topics, groups, schema and index, so tests cannot see each other."""
    made: list[LocalPipeline] = []

    def factory(*, partitions: int = 3, env: dict[str, str] | None = None) -> LocalPipeline:
        run = uuid.uuid4().hex[:8]
        prefix = f"t{run}."
        asyncio.run(provision_topics(kafka_broker.bootstrap_servers, partitions=partitions, prefix=prefix))
        pipeline = LocalPipeline(
            home=Path(tmp_path_factory.mktemp(f"pipeline-{run}")),
            bootstrap_servers=kafka_broker.bootstrap_servers,
            database_url=postgres_url,
            topic_prefix=prefix,
            group_prefix=f"g{run}",
            env={
                "HEADWATER_ENVIRONMENT": "test",
                "HEADWATER_DATABASE_SCHEMA": f"d_{run}",
                "HEADWATER_EMBEDDER_BACKEND": "hashing",
                "HEADWATER_KAFKA_PAUSE_S": "0.5",
                "HEADWATER_QUERY_AUTH": "disabled",  # these tests are about delivery; auth has its own
                **(env or {}),
            },
        )
        made.append(pipeline)
        return pipeline

    yield factory
    for pipeline in made:
        pipeline.stop_all()


def post_document(pipeline: LocalPipeline, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{pipeline.url('ingest')}/v1/documents", json=body, timeout=30)


def search(pipeline: LocalPipeline, tenant: str, query: str, **extra: Any) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{pipeline.url('index-node')}/v1/search",
        json={"tenant": tenant, "query": query, "top_k": 20, **extra},
        timeout=30,
    )
    if response.status_code == 503:  # no collection yet: nothing indexed
        return []
    response.raise_for_status()
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 120.0, what: str = "condition") -> None:
    """Wait at the pipeline's pace: processes and a broker take seconds, not milliseconds."""
    wait_until(predicate, timeout_s=timeout_s, interval_s=0.3, what=what)


def pipeline_lag(pipeline: LocalPipeline) -> int:
    return pipeline.lag()
