"""Connector configurations as code (`infra/connectors/*.json`), applied through Connect's REST API.

A file's name is the connector's name and its content the connector's config. `${NAME}` and
`${NAME:-default}` are filled in from the environment of whoever applies it (hosts, ports, tables);
`${env:NAME}` is left for the worker's own config provider, so secrets never reach Connect's config
topic or its REST answers. Applying is idempotent: an unchanged config is not sent again (a changed
one restarts the connector).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "ConnectClient",
    "ConnectorError",
    "ConnectorFile",
    "change_topics",
    "connector_files",
    "ensure_change_topics",
    "render_config",
]

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_LITERAL_TABLE = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
_TOPIC_DEFAULTS = "topic.creation.default."
_TOPIC_ALREADY_EXISTS = 36
_RETRYABLE = (409, 503)  # a rebalance in progress, or a worker still joining its group


class ConnectorError(RuntimeError):
    """A connector config is invalid, or the Connect worker refused or failed it."""


@dataclass(frozen=True)
class ConnectorFile:
    name: str
    path: Path
    template: dict[str, str]

    def render(self, env: Mapping[str, str]) -> dict[str, str]:
        return render_config(self.template, env, where=str(self.path))


def render_config(
    template: Mapping[str, str], env: Mapping[str, str], *, where: str = "config"
) -> dict[str, str]:
    """Fill `${NAME}` / `${NAME:-default}` from `env`; `${env:NAME}` is left to the worker."""
    missing: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        missing.add(name)
        return match.group(0)

    rendered = {key: _VARIABLE.sub(substitute, str(value)) for key, value in template.items()}
    if missing:
        raise ConnectorError(f"{where}: set {', '.join(sorted(missing))} (no default in the file)")
    return rendered


def connector_files(folder: Path, *, names: list[str] | None = None) -> list[ConnectorFile]:
    """The connector configs in `folder` (`<name>.json`), optionally only `names`."""
    files = []
    for path in sorted(folder.glob("*.json")):
        if names and path.stem not in names:
            continue
        try:
            template = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConnectorError(f"{path}: {exc}") from exc
        if not isinstance(template, dict) or not all(isinstance(v, str) for v in template.values()):
            raise ConnectorError(f"{path}: a connector config is a JSON object of string values")
        files.append(ConnectorFile(path.stem, path, template))
    unknown = set(names or []) - {f.name for f in files}
    if unknown:
        raise ConnectorError(f"no connector file for {', '.join(sorted(unknown))} in {folder}")
    return files


@dataclass(frozen=True)
class ChangeTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def change_topics(config: Mapping[str, str]) -> list[ChangeTopic]:
    """The topics a Debezium connector will write row changes to (`<topic.prefix>.<schema>.<table>`),
    with the partitions and settings its `topic.creation.default.*` ask for. Tables given as regular
    expressions in `table.include.list` cannot be named in advance and are left to the worker."""
    prefix = config.get("topic.prefix")
    tables = [t.strip() for t in config.get("table.include.list", "").split(",") if t.strip()]
    if not prefix:
        return []
    settings = {k[len(_TOPIC_DEFAULTS) :]: v for k, v in config.items() if k.startswith(_TOPIC_DEFAULTS)}
    partitions = int(settings.pop("partitions", "1"))
    replication_factor = int(settings.pop("replication.factor", "1"))
    return [
        ChangeTopic(f"{prefix}.{table}", partitions, replication_factor, settings)
        for table in tables
        if _LITERAL_TABLE.match(table)
    ]


async def ensure_change_topics(bootstrap_servers: str, topics: list[ChangeTopic]) -> list[str]:
    """Create the missing change topics, so consumers can subscribe before the first change (the broker
    does not auto-create topics, and a consumer of a missing topic fails to start). Returns those created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

    if not topics:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        present = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in present]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.configs) for t in missing]
        )
        created = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                raise ConnectorError(
                    f"creating topic {name} failed with Kafka error code {code}: {entry[2:]}"
                )
        return created
    finally:
        await admin.close()


class ConnectClient:
    """The parts of the Kafka Connect REST API that `headwater connectors` uses."""

    def __init__(
        self, url: str, *, transport: httpx.BaseTransport | None = None, timeout_s: float = 30.0
    ) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), transport=transport, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, body: Any = None, attempts: int = 10) -> httpx.Response:
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                raise ConnectorError(f"Kafka Connect at {self._http.base_url}: {exc}") from exc
            if response.status_code not in _RETRYABLE or attempt == attempts - 1:
                return response
            time.sleep(min(0.5 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    @staticmethod
    def _fail(response: httpx.Response, what: str) -> ConnectorError:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        return ConnectorError(f"{what}: HTTP {response.status_code}: {str(message)[:1000]}")

    def connectors(self) -> list[str]:
        response = self._request("GET", "/connectors")
        if response.status_code != 200:
            raise self._fail(response, "listing connectors")
        names: list[str] = response.json()
        return sorted(names)

    def config(self, name: str) -> dict[str, str] | None:
        response = self._request("GET", f"/connectors/{name}/config")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"reading {name}")
        config: dict[str, str] = response.json()
        return config

    def apply(self, name: str, config: Mapping[str, str]) -> str:
        """Create or update `name`; 'created', 'updated' or 'unchanged' (then nothing is sent)."""
        current = self.config(name)
        wanted = {**config, "name": name}
        if current is not None and current == wanted:
            return "unchanged"
        self.validate(name, config)
        response = self._request("PUT", f"/connectors/{name}/config", body=dict(config))
        if response.status_code not in (200, 201):
            raise self._fail(response, f"applying {name}")
        return "created" if response.status_code == 201 else "updated"

    def validate(self, name: str, config: Mapping[str, str]) -> None:
        """Ask the connector plugin to check `config` (Debezium logs in to the database); raise with its
        messages. PUT would refuse an invalid config too, but Connect 4.3 answers that with a bare 500."""
        plugin = config.get("connector.class")
        if not plugin:
            raise ConnectorError(f"{name}: no connector.class")
        response = self._request(
            "PUT", f"/connector-plugins/{plugin}/config/validate", body={**config, "name": name}
        )
        if response.status_code != 200:
            raise self._fail(response, f"validating {name}")
        result = response.json()
        if result.get("error_count", 0):
            errors = [
                f"{entry['value']['name']}: {error}"
                for entry in result.get("configs", [])
                for error in (entry.get("value") or {}).get("errors", [])
            ]
            raise ConnectorError(f"{name} is not valid: " + "; ".join(errors)[:3000])

    def status(self, name: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/connectors/{name}/status")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"status of {name}")
        status: dict[str, Any] = response.json()
        return status

    def wait_running(self, name: str, *, timeout_s: float = 120.0) -> dict[str, Any]:
        """Poll until the connector and all its tasks run; a FAILED one raises with its trace."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            status = self.status(name)
            if status is not None:
                states = [status["connector"]["state"], *(t["state"] for t in status.get("tasks", []))]
                if "FAILED" in states:
                    traces = [status["connector"].get("trace"), *(t.get("trace") for t in status["tasks"])]
                    trace = next((t for t in traces if t), "")
                    raise ConnectorError(f"{name} failed: {trace[:3000]}")
                if status.get("tasks") and set(states) == {"RUNNING"}:
                    return status
            time.sleep(0.5)
        raise ConnectorError(f"{name} not RUNNING after {timeout_s:g} s: {json.dumps(status)[:1000]}")

    def restart(self, name: str) -> None:
        """Restart the connector and all of its tasks."""
        response = self._request("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=false")
        if response.status_code not in (200, 202, 204):
            raise self._fail(response, f"restarting {name}")

    def delete(self, name: str) -> bool:
        """Remove the connector; False if there was none. Its replication slot stays in Postgres."""
        response = self._request("DELETE", f"/connectors/{name}")
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 204):
            raise self._fail(response, f"deleting {name}")
        return True
