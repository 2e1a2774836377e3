"""A real single-node KRaft Kafka broker run from Maven jars as a subprocess (no Docker, no tarball)."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]

from headwater.stack.maven import INFRA, fetch_with_maven, fetched
from headwater.stack.process import (
    ManagedProcess,
    StackError,
    free_port,
    pid_runs,
    port_open,
    run_tool,
)
from headwater.stack.process import stop_pid as stop_detached

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaStackError",
    "broker_alive",
    "default_lib_dir",
    "free_port",
    "ping",
    "stop_pid",
]

KAFKA_VERSION = "4.3.1"
KAFKA_MAIN = "kafka.Kafka"
INFRA_DIR = INFRA / "kafka"
_T = TypeVar("_T")

# The stack's one error type, under the name the CLI and tests have always imported it by.
KafkaStackError = StackError


def default_lib_dir(*, version: str = KAFKA_VERSION, cache_home: Path | None = None) -> Path:
    """Where the broker jars of one Kafka version are cached."""
    base = cache_home if cache_home is not None else Path.home() / ".cache" / "headwater"
    return base / "kafka" / version / "lib"


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[_T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


async def ping(bootstrap: str, *, timeout_s: float = 5.0) -> int:
    """Describe the cluster through the admin API; returns the number of brokers."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return len(cluster["brokers"])
    finally:
        await admin.close()


def broker_alive(pid: int, *, main_class: str = KAFKA_MAIN) -> bool:
    """Whether `pid` is a running Kafka broker, or JVM of `main_class` (guards against a recycled pid)."""
    return pid_runs(pid, cmdline_arg=main_class)


def stop_pid(pid: int, *, timeout_s: float = 20.0, main_class: str = KAFKA_MAIN) -> None:
    """SIGTERM a broker (or JVM of `main_class`) we hold no Popen for; SIGKILL it past the timeout."""
    stop_detached(pid, cmdline_arg=main_class, timeout_s=timeout_s)


def _server_properties(*, log_dir: Path, port: int, controller_port: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={log_dir}",
            "num.partitions=1",
            # Topics are provisioned as code; a wrong name must fail, not create a stray topic.
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Lighter for a laptop and tests: one offsets partition, no rebalance delay, small cleaner.
            "offsets.topic.num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.dedupe.buffer.size=2097152",
            "",
        ]
    )


class KafkaBroker(ManagedProcess):
    """Fetches the broker jars, formats a KRaft log dir and runs `kafka.Kafka` until stopped."""

    def __init__(
        self,
        *,
        lib_dir: Path | None = None,
        version: str = KAFKA_VERSION,
        java: str = "java",
        heap: str = "512m",
        start_timeout_s: float = 60.0,
    ) -> None:
        super().__init__("kafka", log_name="kafka.log", stop_timeout_s=20.0)
        self.version = version
        self.lib_dir = lib_dir if lib_dir is not None else default_lib_dir(version=version)
        self.java = java
        self.heap = heap
        self.start_timeout_s = start_timeout_s

    @property
    def bootstrap_servers(self) -> str:
        """`host:port` clients connect to."""
        if self.port is None:
            raise StackError("broker not started")
        return f"127.0.0.1:{self.port}"

    def fetch_jars(self, lib_dir: Path | None = None) -> Path:
        """Copy the pinned broker jars into `lib_dir` (then used by `start`) with Maven, once."""
        if lib_dir is not None:
            self.lib_dir = lib_dir
        return fetch_with_maven(INFRA_DIR, self.lib_dir, properties={"kafka.version": self.version})

    def _java(self, *args: str) -> list[str]:
        return [
            self.java,
            f"-Dlog4j2.configurationFile={INFRA_DIR / 'log4j2.properties'}",
            "-cp",
            str(self.lib_dir / "*"),
            *args,
        ]

    def _format(self, *, home: Path, config: Path) -> None:
        # The cluster id is kept beside the log dir so a restart on the same dir reuses it.
        id_file = home / "cluster.id"
        if not id_file.exists():
            # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        cluster_id = id_file.read_text().strip()
        # With static controller.quorum.voters the log dir is formatted without --standalone.
        cmd = self._java(
            # `=` form: an id may start with "-", which the tool's argument parser takes for an option.
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(config),
            "--ignore-formatted",
        )
        run_tool(cmd, what="kafka storage format")

    def start(self, home_dir: Path, *, port: int | None = None, detach: bool = False) -> Self:
        """Format `home_dir` if needed, launch the broker and wait until the admin API answers."""
        if not fetched(self.lib_dir):
            raise StackError(f"no broker jars in {self.lib_dir}; call fetch_jars() first")
        home = self.prepare(home_dir, port=port)
        assert self.port is not None
        config = home / "server.properties"
        config.write_text(
            _server_properties(log_dir=home / "data", port=self.port, controller_port=free_port())
        )
        if not (home / "data" / "meta.properties").exists():  # formatting costs a JVM start (~2.5 s)
            self._format(home=home, config=config)
        cmd = self._java("-Xms256m", f"-Xmx{self.heap}", KAFKA_MAIN, str(config))
        self.launch(cmd, self._answers, timeout_s=self.start_timeout_s, interval_s=0.2, detach=detach)
        return self

    def _answers(self) -> str | None:
        """Ready once the admin API describes the cluster; until then, why not."""
        assert self.port is not None
        if not port_open(self.port):
            return f"nothing listens on port {self.port} yet"
        try:
            _run_sync(ping(self.bootstrap_servers, timeout_s=5.0))
        except Exception as exc:  # not ready yet: metadata or the controller is still coming up
            return f"last error: {exc!r}"
        return None
