"""Integration fixtures: a real single-node Kafka broker (KRaft) run from the project's own launcher."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.stack.kafka import KafkaBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker for the session in a temporary home; tests isolate themselves by topic prefix and group."""
    broker = KafkaBroker()
    broker.fetch_jars()
    with broker.start(tmp_path_factory.mktemp("kafka")):
        yield broker
