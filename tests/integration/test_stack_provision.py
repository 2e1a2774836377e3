"""`headwater stack provision` against a real broker: settings from the environment, idempotence, waiting."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from typer.testing import CliRunner

from headwater.cli import app
from headwater.stack.kafka import KafkaBroker, free_port
from headwater.stack.topics import wanted_topics
from schemas.topics import DOCUMENTS

pytestmark = pytest.mark.integration

runner = CliRunner()


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _partition_count(bootstrap: str, name: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return len(await producer.partitions_for(name))
    finally:
        await producer.stop()


def test_provision_takes_its_defaults_from_the_kafka_settings_and_is_idempotent(
    kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("HEADWATER_KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
    monkeypatch.setenv("HEADWATER_KAFKA_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("HEADWATER_KAFKA_PARTITIONS", "2")
    names = {prefix + topic.name for topic in wanted_topics()}

    first = runner.invoke(app, ["stack", "provision"])
    assert first.exit_code == 0, first.output
    assert f"topics created: {len(names)}, already there: 0" in first.stdout
    assert names <= asyncio.run(_topics(kafka_broker.bootstrap_servers))
    assert asyncio.run(_partition_count(kafka_broker.bootstrap_servers, prefix + DOCUMENTS.name)) == 2

    again = runner.invoke(app, ["stack", "provision", "--partitions", "4"])
    assert again.exit_code == 0, again.output
    assert f"topics created: 0, already there: {len(names)}" in again.stdout
    # Existing topics are left as they are: no repartitioning behind the consumers' backs.
    assert asyncio.run(_partition_count(kafka_broker.bootstrap_servers, prefix + DOCUMENTS.name)) == 2


def test_provision_gives_up_with_a_clear_message_when_no_broker_answers() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"

    result = runner.invoke(app, ["stack", "provision", "--bootstrap-servers", bootstrap, "--timeout-s", "1"])

    assert result.exit_code == 1
    assert f"could not provision topics at {bootstrap} within 1 s" in result.stderr
    assert "KafkaConnectionError" in result.stderr


def test_provision_waits_for_a_broker_that_starts_after_it(tmp_path: Path) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    # A separate process, as in a container started before the broker is up.
    argv = ["stack", "provision", "--bootstrap-servers", bootstrap, "--partitions", "1", "--timeout-s", "120"]
    provisioner = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    broker = KafkaBroker()
    broker.fetch_jars()
    try:
        # Start the broker only once the provisioner has been refused, so the test shows it retried.
        assert provisioner.stderr is not None
        seen = ""
        while "Unable connect" not in seen:
            line = provisioner.stderr.readline()
            assert line, f"provisioner ended before trying: {seen[-2000:]}"
            seen += line
        with broker.start(tmp_path / "kafka", port=port):
            stdout, stderr = provisioner.communicate(timeout=150)
            assert provisioner.returncode == 0, (seen + stderr)[-2000:]
            assert f"topics created: {len(wanted_topics())}, already there: 0" in stdout
            assert {t.name for t in wanted_topics()} <= asyncio.run(_topics(bootstrap))
    finally:
        if provisioner.poll() is None:
            provisioner.kill()
            provisioner.wait()
