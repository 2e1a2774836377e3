"""A whole distributed pipeline as local processes: one `headwater run` per service on one broker.

The freshness benchmark and the crash tests drive it. Topology: ingest, chunker, embedder and
graph-builder as their own processes, and an index node (indexer + query gateway over the embedded
engine, which one process may open). With a Qdrant server the indexer and query run apart instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from headwater.stack.kafka import free_port

PIPELINE_SERVICES: tuple[str, ...] = ("ingest", "chunker", "embedder", "graph-builder", "index-node")


@dataclass
class ServiceHandle:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class LocalPipeline:
    """Starts, kills and restarts service processes; every process shares `env`."""

    home: Path
    bootstrap_servers: str
    database_url: str
    topic_prefix: str = ""
    group_prefix: str = "headwater"
    env: Mapping[str, str] = field(default_factory=dict)
    services: dict[str, ServiceHandle] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)  # every process serves /metrics

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "HEADWATER_HOME": str(self.home),
            "HEADWATER_DATABASE_URL": self.database_url,
            "HEADWATER_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "HEADWATER_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "HEADWATER_KAFKA_GROUP_PREFIX": self.group_prefix,
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }

    def start(self, name: str) -> ServiceHandle:
        """Start (or restart) one service; HTTP services keep their port across restarts. `chunker#2`
        names a second process of the chunker service (same consumer group: the partitions split)."""
        self.home.mkdir(parents=True, exist_ok=True)
        service = name.split("#", 1)[0]
        port = (
            self.ports.setdefault(name, free_port()) if service in ("ingest", "query", "index-node") else None
        )
        log = (self.home / f"{name}.log").open("ab")
        metrics_port = str(self.metrics_ports.setdefault(name, free_port()))
        command = [sys.executable, "-m", "headwater", "run", service, "--metrics-port", metrics_port, "-v"]
        if port is not None:
            command += ["--port", str(port)]
        process = subprocess.Popen(  # noqa: S603 - our own CLI, no shell
            command, env=self._environment(), stdout=log, stderr=subprocess.STDOUT
        )
        handle = ServiceHandle(name, process, log, port)
        self.services[name] = handle
        return handle

    def start_all(self, names: tuple[str, ...] = PIPELINE_SERVICES, *, timeout_s: float = 180.0) -> None:
        for name in names:
            self.start(name)
        for name in names:
            self.wait_http(name, timeout_s=timeout_s)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def wait_http(self, name: str, *, timeout_s: float = 180.0) -> None:
        """Block until an HTTP service answers /healthz (consumers have no port: only check they live)."""
        handle = self.services[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if handle.process.poll() is not None:
                raise RuntimeError(
                    f"service {name} exited with {handle.process.returncode}: {self.log_tail(name)}"
                )
            if handle.port is None:
                return
            try:
                if httpx.get(f"{self.url(name)}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"service {name} not ready after {timeout_s} s: {self.log_tail(name)}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        handle = self.services.pop(name)
        handle.process.send_signal(sig)
        handle.process.wait(timeout=60)
        handle.log.close()

    def restart(self, name: str, *, sig: int = signal.SIGKILL) -> ServiceHandle:
        self.kill(name, sig)
        handle = self.start(name)
        self.wait_http(name)
        return handle

    def alive(self) -> dict[str, bool]:
        return {name: h.process.poll() is None for name, h in self.services.items()}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.home / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop_all(self, *, timeout_s: float = 60.0) -> None:
        """SIGTERM every service (graceful: the batch in hand is finished and committed)."""
        for handle in self.services.values():
            if handle.process.poll() is None:
                handle.process.send_signal(signal.SIGTERM)
        for handle in self.services.values():
            try:
                handle.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                handle.process.kill()
                handle.process.wait()
            handle.log.close()
        self.services.clear()

    def cli(self, *args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run a `headwater` command (replay, dlq, lag …) against this pipeline's cluster."""
        return subprocess.run(  # noqa: S603 - our own CLI, no shell
            [sys.executable, "-m", "headwater", *args],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def lag(self) -> int:
        """Records not yet committed by their stage's consumer group, summed over every stage."""
        from headwater.config import KafkaSettings
        from headwater.operations.lag import measure_lag

        settings = KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            topic_prefix=self.topic_prefix,
            group_prefix=self.group_prefix,
        )
        return sum(group.total for group in asyncio.run(measure_lag(settings)))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()
