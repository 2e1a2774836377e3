"""`headwater connectors`: connector files render from the environment (secrets left to the worker) and
are applied idempotently through Kafka Connect's REST API, here a MockTransport that implements the
documented endpoints (PUT .../config 201 then 200, GET .../status, validate, DELETE 204, 409 while
rebalancing). The real worker is exercised in tests/integration/test_cdc_connect.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.stack.connectors import (
    ConnectClient,
    ConnectorError,
    change_topics,
    connector_files,
    render_config,
)

ROOT = Path(__file__).resolve().parents[2]


class FakeConnect:
    """The REST contract of a Connect worker, in memory."""

    def __init__(self, *, rebalancing: int = 0, validation_errors: dict[str, str] | None = None) -> None:
        self.configs: dict[str, dict[str, str]] = {}
        self.puts = 0
        self.rebalancing = rebalancing
        self.validation_errors = validation_errors or {}
        self.task_state = "RUNNING"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if self.rebalancing:
            self.rebalancing -= 1
            return httpx.Response(409, json={"error_code": 409, "message": "rebalance in progress"})
        if parts[0] == "connector-plugins" and request.method == "PUT":
            values = [
                {
                    "value": {
                        "name": key,
                        "errors": [self.validation_errors[key]] if key in self.validation_errors else [],
                    }
                }
                for key in {
                    *json.loads(request.content),
                    *self.validation_errors,
                }  # every key the plugin knows
            ]
            return httpx.Response(200, json={"error_count": len(self.validation_errors), "configs": values})
        if parts == ["connectors"]:
            return httpx.Response(200, json=sorted(self.configs))
        name = parts[1]
        if request.method == "PUT" and parts[2:] == ["config"]:
            self.puts += 1
            created = name not in self.configs
            self.configs[name] = {**json.loads(request.content), "name": name}
            return httpx.Response(201 if created else 200, json={"name": name, "config": self.configs[name]})
        if name not in self.configs:
            return httpx.Response(404, json={"error_code": 404, "message": f"Connector {name} not found"})
        if request.method == "GET" and parts[2:] == ["config"]:
            return httpx.Response(200, json=self.configs[name])
        if request.method == "GET" and parts[2:] == ["status"]:
            task: dict[str, Any] = {"id": 0, "state": self.task_state, "worker_id": "w"}
            if self.task_state == "FAILED":
                task["trace"] = "org.postgresql.util.PSQLException: FATAL: password authentication failed"
            return httpx.Response(
                200, json={"name": name, "connector": {"state": "RUNNING", "worker_id": "w"}, "tasks": [task]}
            )
        if request.method == "DELETE":
            del self.configs[name]
            return httpx.Response(204)
        return httpx.Response(405)


def _client(fake: FakeConnect) -> ConnectClient:
    return ConnectClient("http://connect:8083", transport=httpx.MockTransport(fake))


CONFIG = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector", "topic.prefix": "cdc"}


def test_apply_creates_then_leaves_an_unchanged_connector_alone_then_updates_it() -> None:
    fake = FakeConnect()
    client = _client(fake)
    assert client.apply("pg", CONFIG) == "created"
    assert client.apply("pg", CONFIG) == "unchanged"
    assert fake.puts == 1  # an unchanged config is not sent: no needless connector restart
    assert client.apply("pg", {**CONFIG, "tasks.max": "1"}) == "updated"
    assert client.wait_running("pg", timeout_s=5)["tasks"][0]["state"] == "RUNNING"
    assert client.delete("pg") is True
    assert client.delete("pg") is False
    assert client.status("pg") is None


def test_invalid_configs_are_refused_with_the_plugins_messages_before_anything_is_stored() -> None:
    fake = FakeConnect(validation_errors={"database.hostname": "password authentication failed"})
    with pytest.raises(ConnectorError, match=r"database\.hostname: password authentication failed"):
        _client(fake).apply("pg", CONFIG)
    assert fake.configs == {}


def test_a_failed_task_is_reported_with_its_trace() -> None:
    fake = FakeConnect()
    client = _client(fake)
    client.apply("pg", CONFIG)
    fake.task_state = "FAILED"
    with pytest.raises(ConnectorError, match="password authentication failed"):
        client.wait_running("pg", timeout_s=5)


def test_requests_during_a_rebalance_are_retried() -> None:
    fake = FakeConnect(rebalancing=2)
    assert _client(fake).apply("pg", CONFIG) == "created"


def test_rendering_fills_variables_and_leaves_worker_secrets_alone() -> None:
    template = {
        "database.hostname": "${HOST:-127.0.0.1}",
        "database.port": "${PORT}",
        "database.password": "${env:HEADWATER_CDC_DATABASE_PASSWORD}",
    }
    assert render_config(template, {"PORT": "5433"}) == {
        "database.hostname": "127.0.0.1",
        "database.port": "5433",
        "database.password": "${env:HEADWATER_CDC_DATABASE_PASSWORD}",
    }
    with pytest.raises(ConnectorError, match="set PORT"):
        render_config(template, {})


def test_the_shipped_connector_file_renders_and_names_its_change_topics() -> None:
    (file,) = connector_files(ROOT / "infra" / "connectors")
    config = file.render({"HEADWATER_CDC_TABLES": "public.articles, public.notes, public\\.audit_.*"})
    assert config["database.password"].startswith("${env:")  # resolved by the worker, never stored
    assert config["skipped.operations"] == "none"  # truncates are captured
    assert config["plugin.name"] == "pgoutput"
    topics = change_topics(config)
    assert [t.name for t in topics] == ["cdc.public.articles", "cdc.public.notes"]  # a regex is the worker's
    # Truncate events have no key, which a compacted topic would refuse.
    assert topics[0].configs["cleanup.policy"] == "delete"
    assert topics[0].partitions == 1
