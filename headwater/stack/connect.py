"""A real Kafka Connect worker (distributed mode) with Debezium's Postgres connector, run from Maven jars.

Like the broker: the jars are fetched once into a cache by Maven (`headwater.stack.maven`), the worker is
a managed subprocess with a log file (`headwater.stack.process`), and readiness is its own `/health`
endpoint. The worker's classpath (`infra/connect/pom.xml`) and the plugin folder
(`infra/connect/debezium-postgres/pom.xml`) are kept apart: Connect loads each plugin in isolation from
`plugin.path`, which holds only the Debezium plugin, found by its service manifests
(`plugin.discovery=service_load`: a fraction of a second instead of a class scan).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

import httpx

from headwater.stack.kafka import KAFKA_VERSION
from headwater.stack.maven import INFRA, fetch_with_maven, fetched
from headwater.stack.process import ManagedProcess, StackError

__all__ = [
    "CONNECT_MAIN",
    "DEBEZIUM_VERSION",
    "KafkaConnect",
    "default_connect_dir",
    "worker_properties",
    "worker_ready",
]

DEBEZIUM_VERSION = "3.6.1.Final"
CONNECT_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
INFRA_DIR = INFRA / "connect"
PLUGIN = "debezium-connector-postgres"
# Secrets a connector config may reference as ${env:NAME}; the worker resolves them, so they never reach
# Connect's config topic or its REST answers.
ENV_ALLOWLIST = r"HEADWATER_CDC_.*|POSTGRES_PASSWORD"


def default_connect_dir(*, version: str = KAFKA_VERSION, cache_home: Path | None = None) -> Path:
    """Where the worker jars (`lib/`) and the plugin folder (`plugins/`) of one version are cached."""
    base = cache_home if cache_home is not None else Path.home() / ".cache" / "headwater"
    return base / "connect" / f"{version}-debezium-{DEBEZIUM_VERSION}"


def worker_properties(
    *, bootstrap_servers: str, port: int, plugin_path: Path, group_id: str, topic_prefix: str
) -> str:
    """A distributed-mode worker for a one-broker cluster: internal topics with replication factor 1."""
    return "\n".join(
        [
            f"bootstrap.servers={bootstrap_servers}",
            f"group.id={group_id}",
            # Plain JSON on the wire: the ingest service reads Debezium's envelope without a schema registry.
            "key.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable=false",
            "value.converter.schemas.enable=false",
            # The broker refuses auto-creation, so the worker creates these itself through the admin API.
            f"config.storage.topic={topic_prefix}connect-configs",
            f"offset.storage.topic={topic_prefix}connect-offsets",
            f"status.storage.topic={topic_prefix}connect-status",
            "config.storage.replication.factor=1",
            "offset.storage.replication.factor=1",
            "status.storage.replication.factor=1",
            "offset.storage.partitions=1",
            "status.storage.partitions=1",
            # Lets connectors create their change topics (topic.creation.default.* in their config).
            "topic.creation.enable=true",
            # Source offsets (the LSN Debezium confirms to Postgres) are flushed every second.
            "offset.flush.interval.ms=1000",
            # One worker: when it restarts its connectors start at once, not after the 5-minute grace
            # period that keeps assignments for a worker expected back.
            "scheduled.rebalance.max.delay.ms=0",
            f"listeners=http://127.0.0.1:{port}",
            "rest.advertised.host.name=127.0.0.1",
            f"rest.advertised.port={port}",
            f"plugin.path={plugin_path}",
            "plugin.discovery=service_load",
            "config.providers=env",
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            f"config.providers.env.param.allowlist.pattern={ENV_ALLOWLIST}",
            "",
        ]
    )


class KafkaConnect(ManagedProcess):
    """Fetches the worker and plugin jars, runs `ConnectDistributed` against a broker until stopped."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        cache_dir: Path | None = None,
        java: str = "java",
        heap: str = "512m",
        group_id: str = "headwater-connect",
        topic_prefix: str = "headwater.",
        start_timeout_s: float = 120.0,
    ) -> None:
        # A SIGTERM stops the connectors and flushes their offsets, which can take a while.
        super().__init__("kafka connect", log_name="connect.log", stop_timeout_s=30.0)
        self.bootstrap_servers = bootstrap_servers
        self.cache_dir = cache_dir if cache_dir is not None else default_connect_dir()
        self.java = java
        self.heap = heap
        self.group_id = group_id
        self.topic_prefix = topic_prefix
        self.start_timeout_s = start_timeout_s

    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / "lib"

    @property
    def plugin_path(self) -> Path:
        return self.cache_dir / "plugins"

    @property
    def url(self) -> str:
        """Base URL of the worker's REST API."""
        if self.port is None:
            raise StackError("connect worker not started")
        return f"http://127.0.0.1:{self.port}"

    def fetch_jars(self) -> Path:
        """Copy the pinned worker jars and the Debezium plugin into the cache with Maven, once."""
        fetch_with_maven(INFRA_DIR, self.lib_dir)
        fetch_with_maven(INFRA_DIR / "debezium-postgres", self.plugin_path / PLUGIN, runtime_only=True)
        return self.cache_dir

    def start(
        self,
        home_dir: Path,
        *,
        port: int | None = None,
        detach: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """Write the worker config, launch the worker and wait until `/health` says it is ready.

        `env` is added to the worker's environment: secrets that connector configs name as `${env:NAME}`.
        """
        if not fetched(self.lib_dir) or not fetched(self.plugin_path / PLUGIN):
            raise StackError(f"no Connect jars in {self.cache_dir}; call fetch_jars() first")
        home = self.prepare(home_dir, port=port)
        assert self.port is not None
        config = home / "worker.properties"
        config.write_text(
            worker_properties(
                bootstrap_servers=self.bootstrap_servers,
                port=self.port,
                plugin_path=self.plugin_path,
                group_id=self.group_id,
                topic_prefix=self.topic_prefix,
            )
        )
        cmd = [
            self.java,
            "-Xms128m",
            f"-Xmx{self.heap}",
            f"-Dlog4j2.configurationFile={INFRA_DIR / 'log4j2.properties'}",
            "-cp",
            str(self.lib_dir / "*"),
            CONNECT_MAIN,
            str(config),
        ]
        self.launch(
            cmd, self._healthy, timeout_s=self.start_timeout_s, interval_s=0.5, detach=detach, env=env
        )
        return self

    def _healthy(self) -> str | None:
        ready, why = worker_ready(self.url)
        return None if ready else why


def worker_ready(url: str) -> tuple[bool, str]:
    """Whether the worker at `url` has joined its group and read its configs (KIP-1017 `/health`)."""
    try:
        response = httpx.get(f"{url}/health", timeout=5.0)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}"
    if response.status_code == 200:
        return True, "ready"
    return False, f"/health answered {response.status_code}: {response.text[:200]}"
