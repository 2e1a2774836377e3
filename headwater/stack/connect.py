"""A real Kafka Connect worker (distributed mode) with Debezium's Postgres connector, run from Maven jars.

Like the broker (`headwater.stack.kafka`): the jars are fetched once into a cache by Maven, the worker is a
subprocess with a log file, and readiness is the worker's own `/health` endpoint. The worker's classpath
(`infra/connect/pom.xml`) and the plugin folder (`infra/connect/debezium-postgres/pom.xml`) are kept apart:
Connect loads each plugin in isolation from `plugin.path`, which holds only the Debezium plugin, found by
its service manifests (`plugin.discovery=service_load`: a fraction of a second instead of a class scan).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from headwater.stack.kafka import (
    KAFKA_VERSION,
    KafkaStackError,
    free_port,
    log_tail,
    spawn_logged,
    stop_process,
)

__all__ = [
    "CONNECT_MAIN",
    "DEBEZIUM_VERSION",
    "KafkaConnect",
    "default_connect_dir",
    "worker_properties",
]

DEBEZIUM_VERSION = "3.6.1.Final"
CONNECT_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
INFRA_DIR = Path(__file__).resolve().parents[2] / "infra" / "connect"
PLUGIN = "debezium-connector-postgres"
_COMPLETE = ".complete"  # written last by a fetch, so a half-finished download is redone
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
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


class KafkaConnect:
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
        self.bootstrap_servers = bootstrap_servers
        self.cache_dir = cache_dir if cache_dir is not None else default_connect_dir()
        self.java = java
        self.heap = heap
        self.group_id = group_id
        self.topic_prefix = topic_prefix
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.home: Path | None = None

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
            raise KafkaStackError("connect worker not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        if self.home is None:
            raise KafkaStackError("connect worker not started")
        return self.home / "connect.log"

    def fetch_jars(self) -> Path:
        """Copy the pinned worker jars and the Debezium plugin into the cache with Maven, once."""
        _copy_dependencies(INFRA_DIR, self.lib_dir)
        _copy_dependencies(INFRA_DIR / "debezium-postgres", self.plugin_path / PLUGIN, runtime_only=True)
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
        if self.process is not None and self.process.poll() is None:
            raise KafkaStackError("connect worker already running")
        if not (self.lib_dir / _COMPLETE).exists() or not (self.plugin_path / PLUGIN / _COMPLETE).exists():
            raise KafkaStackError(f"no Connect jars in {self.cache_dir}; call fetch_jars() first")
        home = home_dir.resolve()
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.port = port if port is not None else free_port()
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
        self.process = spawn_logged(cmd, self.log_file, detach=detach, env=env)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise KafkaStackError(
                    f"kafka connect exited early with code {code}; log tail:\n{log_tail(self.log_file)}"
                )
            ready, last = worker_ready(self.url)
            if ready:
                return
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.5)
        raise KafkaStackError(
            f"kafka connect not ready after {self.start_timeout_s}s ({last});"
            f" log tail:\n{log_tail(self.log_file)}"
        )

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM the worker (it stops its connectors and flushes offsets), SIGKILL it past `timeout_s`."""
        process, self.process = self.process, None
        stop_process(process, timeout_s=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def worker_ready(url: str) -> tuple[bool, str]:
    """Whether the worker at `url` has joined its group and read its configs (KIP-1017 `/health`)."""
    try:
        response = httpx.get(f"{url}/health", timeout=5.0)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}"
    if response.status_code == 200:
        return True, "ready"
    return False, f"/health answered {response.status_code}: {response.text[:200]}"


def _copy_dependencies(pom_dir: Path, target: Path, *, runtime_only: bool = False) -> None:
    if (target / _COMPLETE).exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    argv = ["mvn", "-B", "-q", _DEPENDENCY_PLUGIN, f"-DoutputDirectory={target}"]
    if runtime_only:
        argv.append("-DincludeScope=runtime")
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell; mvn is looked up on PATH
        argv, cwd=pom_dir, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise KafkaStackError(
            f"mvn copy-dependencies in {pom_dir} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    (target / _COMPLETE).write_text("ok")
