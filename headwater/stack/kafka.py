"""A real single-node KRaft Kafka broker run from Maven jars as a subprocess (no Docker, no tarball)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]

__all__ = ["KAFKA_VERSION", "KafkaBroker", "KafkaStackError", "broker_alive", "ping", "stop_pid"]

KAFKA_VERSION = "4.3.1"
INFRA_DIR = Path(__file__).resolve().parents[2] / "infra" / "kafka"
_COMPLETE = ".complete"  # written last by fetch_jars, so a half-finished download is redone
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
_T = TypeVar("_T")


class KafkaStackError(RuntimeError):
    """The local Kafka broker could not be fetched, started or reached."""


def default_lib_dir(*, version: str = KAFKA_VERSION, cache_home: Path | None = None) -> Path:
    """Where the broker jars of one Kafka version are cached."""
    base = cache_home if cache_home is not None else Path.home() / ".cache" / "headwater"
    return base / "kafka" / version / "lib"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


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


def broker_alive(pid: int, *, main_class: str = "kafka.Kafka") -> bool:
    """Whether `pid` is a running Kafka broker, or JVM of `main_class` (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[1].split()[0] == "Z"
    return main_class.encode() in cmdline.split(b"\0") and not zombie


def stop_pid(pid: int, *, timeout_s: float = 20.0, main_class: str = "kafka.Kafka") -> None:
    """SIGTERM a broker (or JVM of `main_class`) we hold no Popen for; SIGKILL it past the timeout."""
    if not broker_alive(pid, main_class=main_class):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not broker_alive(pid, main_class=main_class):
            return
        time.sleep(0.1)  # polling a foreign pid: there is nothing to wait on
    os.kill(pid, signal.SIGKILL)


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


def spawn_logged(
    cmd: list[str], log_file: Path, *, detach: bool, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a JVM with its output appended to `log_file`. A new session (`detach`) keeps a detached
    process alive after the CLI exits and away from Ctrl-C."""
    with log_file.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
            env={**os.environ, **env} if env else None,
        )


def log_tail(log_file: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout_s: float) -> None:
    """SIGTERM a child we started, SIGKILL it if it has not exited within `timeout_s`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class KafkaBroker:
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
        self.version = version
        self.lib_dir = lib_dir if lib_dir is not None else default_lib_dir(version=version)
        self.java = java
        self.heap = heap
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.home: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        """`host:port` clients connect to."""
        if self.port is None:
            raise KafkaStackError("broker not started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """The broker's combined stdout and stderr."""
        if self.home is None:
            raise KafkaStackError("broker not started")
        return self.home / "kafka.log"

    def fetch_jars(self, lib_dir: Path | None = None) -> Path:
        """Copy the pinned broker jars into `lib_dir` (then used by `start`) with Maven, once."""
        if lib_dir is not None:
            self.lib_dir = lib_dir
        target = self.lib_dir
        if (target / _COMPLETE).exists():
            return target
        target.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [  # noqa: S607 - mvn is looked up on PATH like any developer tool
                "mvn",
                "-B",
                "-q",
                f"-Dkafka.version={self.version}",
                _DEPENDENCY_PLUGIN,
                f"-DoutputDirectory={target}",
            ],
            cwd=INFRA_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaStackError(
                f"mvn copy-dependencies failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        (target / _COMPLETE).write_text(self.version)
        return target

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
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
        if result.returncode != 0:
            raise KafkaStackError(
                f"kafka storage format failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )

    def start(self, home_dir: Path, *, port: int | None = None, detach: bool = False) -> Self:
        """Format `home_dir` if needed, launch the broker and wait until the admin API answers."""
        if self.process is not None and self.process.poll() is None:
            raise KafkaStackError("broker already running")
        if not (self.lib_dir / _COMPLETE).exists():
            raise KafkaStackError(f"no broker jars in {self.lib_dir}; call fetch_jars() first")
        home = home_dir.resolve()
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.port = port if port is not None else free_port()
        config = home / "server.properties"
        config.write_text(
            _server_properties(log_dir=home / "data", port=self.port, controller_port=free_port())
        )
        if not (home / "data" / "meta.properties").exists():  # formatting costs a JVM start (~2.5 s)
            self._format(home=home, config=config)
        cmd = self._java("-Xms256m", f"-Xmx{self.heap}", "kafka.Kafka", str(config))
        self.process = spawn_logged(cmd, self.log_file, detach=detach)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        assert self.port is not None
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise KafkaStackError(
                    f"kafka exited early with code {code}; log tail:\n{log_tail(self.log_file)}"
                )
            if _port_open(self.port):
                try:
                    _run_sync(ping(self.bootstrap_servers, timeout_s=5.0))
                    return
                except Exception as exc:  # not ready yet: metadata or the controller is still coming up
                    last_error = exc
            # Waiting on the process doubles as the poll interval and returns at once if it dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.2)
        raise KafkaStackError(
            f"kafka not ready after {self.start_timeout_s}s (last error: {last_error!r}); "
            f"log tail:\n{log_tail(self.log_file)}"
        )

    def stop(self, *, timeout_s: float = 20.0) -> None:
        """SIGTERM the broker, SIGKILL it if it has not exited within `timeout_s`."""
        process, self.process = self.process, None
        stop_process(process, timeout_s=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
