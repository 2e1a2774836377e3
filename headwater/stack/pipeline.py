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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from headwater.stack.process import ManagedProcess, Probe, free_port, log_tail

__all__ = ["PIPELINE_SERVICES", "LocalPipeline", "ServiceHandle"]

PIPELINE_SERVICES: tuple[str, ...] = ("ingest", "chunker", "embedder", "graph-builder", "index-node")


class ServiceHandle(ManagedProcess):
    """One `headwater run <service>` process, logging to `<home>/<name>.log`; HTTP services have a port."""

    def __init__(self, name: str, *, home: Path, port: int | None) -> None:
        # SIGTERM is graceful: the batch in hand is finished and committed first.
        super().__init__(f"service {name}", log_name=f"{name}.log", stop_timeout_s=60.0)
        self.name = name
        self.home = home
        self.port = port

    def answers(self) -> Probe:
        """Ready when /healthz answers 200; a consumer without a port is ready once it runs."""
        if self.port is None:
            return lambda: None
        url = f"http://127.0.0.1:{self.port}/healthz"

        def probe() -> str | None:
            try:
                status = httpx.get(url, timeout=1.0).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return None if status == 200 else f"/healthz answered {status}"

        return probe


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
        metrics_port = str(self.metrics_ports.setdefault(name, free_port()))
        command = [sys.executable, "-m", "headwater", "run", service, "--metrics-port", metrics_port, "-v"]
        if port is not None:
            command += ["--port", str(port)]
        handle = ServiceHandle(name, home=self.home, port=port)
        handle.spawn(command, env=self._environment())
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
        handle.wait_ready(handle.answers(), timeout_s=timeout_s)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one service and wait for it to exit (the chaos tests' crash or graceful stop)."""
        process = self.services.pop(name).process
        if process is not None:
            process.send_signal(sig)
            process.wait(timeout=60)

    def restart(self, name: str, *, sig: int = signal.SIGKILL) -> ServiceHandle:
        self.kill(name, sig)
        handle = self.start(name)
        self.wait_http(name)
        return handle

    def alive(self) -> dict[str, bool]:
        return {name: handle.running() for name, handle in self.services.items()}

    def log_tail(self, name: str, lines: int = 30) -> str:
        return log_tail(self.home / f"{name}.log", lines)

    def stop_all(self, *, timeout_s: float = 60.0) -> None:
        """SIGTERM every service at once, then wait for each (SIGKILL past `timeout_s`)."""
        for handle in self.services.values():
            handle.terminate()
        for handle in self.services.values():
            handle.reap(timeout_s=timeout_s)
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
