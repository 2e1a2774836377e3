"""The lifecycle every local launcher shares: a child process with its output appended to a log file,
waited on until a probe says it is ready (failing fast, with the log tail, if it exits first), stopped
with SIGTERM and then SIGKILL; a detached process we hold no Popen for is found and stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "ManagedProcess",
    "NotReadyError",
    "Probe",
    "ProcessExitedError",
    "StackError",
    "free_port",
    "log_tail",
    "pid_runs",
    "port_open",
    "run_tool",
    "spawn_logged",
    "stop_pid",
]

# Asked of a starting child until it returns None (ready); anything else says why it is not ready yet.
Probe = Callable[[], str | None]


class StackError(RuntimeError):
    """A local process or its files could not be fetched, started, reached or stopped."""


class ProcessExitedError(StackError):
    """A child exited before it was ready."""


class NotReadyError(StackError, TimeoutError):
    """A child still was not ready when its start timeout ran out."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def run_tool(
    argv: Sequence[str], *, what: str, cwd: Path | None = None, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived tool (mvn, initdb, pg_ctl …) to completion; a failure raises with its output."""
    result = subprocess.run(  # noqa: S603 - fixed argv from the launchers, no shell
        list(argv), cwd=cwd, capture_output=True, text=True, check=False, **popen
    )
    if result.returncode != 0:
        raise StackError(f"{what} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result


def spawn_logged(
    cmd: Sequence[str], log_file: Path, *, detach: bool = False, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` with its output appended to `log_file`. A new session (`detach`) keeps a detached
    process alive after the CLI exits and away from Ctrl-C."""
    with log_file.open("ab") as log:  # the child holds its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
            env={**os.environ, **env} if env else None,
        )


def log_tail(log_file: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log, for an error message."""
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pid_runs(pid: int, *, cmdline_arg: str) -> bool:
    """Whether `pid` runs and has `cmdline_arg` (a JVM's main class) in its command line, so a pid the
    kernel has recycled for another program is never taken for ours."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[1].split()[0] == "Z"
    return cmdline_arg.encode() in cmdline.split(b"\0") and not zombie


def stop_pid(pid: int, *, cmdline_arg: str, timeout_s: float = 20.0) -> None:
    """SIGTERM a detached process we hold no Popen for (see `pid_runs`); SIGKILL it past the timeout."""
    if not pid_runs(pid, cmdline_arg=cmdline_arg):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_runs(pid, cmdline_arg=cmdline_arg):
            return
        time.sleep(0.1)  # polling a foreign pid: there is nothing to wait on
    os.kill(pid, signal.SIGKILL)


class ManagedProcess:
    """One child at a time, its output appended to `<home>/<log_name>`; `label` names it in messages.

    A launcher calls `prepare` (refuses a second start, picks the folder and port), then `launch` with its
    command and readiness probe; `stop`, or leaving a `with` block, ends the child.
    """

    def __init__(self, label: str, *, log_name: str, stop_timeout_s: float = 20.0) -> None:
        self.label = label
        self.log_name = log_name
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.home: Path | None = None
        self.port: int | None = None

    @property
    def log_file(self) -> Path:
        """The child's combined stdout and stderr."""
        if self.home is None:
            raise StackError(f"{self.label} not started")
        return self.home / self.log_name

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError(f"{self.label} not started")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_file, lines)

    def prepare(self, home_dir: Path, *, port: int | None = None) -> Path:
        """Refuse while the child runs; create `home_dir` for its files, take `port` or a free one."""
        if self.running():
            raise StackError(f"{self.label} already running")
        self.home = home_dir.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        return self.home

    def spawn(
        self, cmd: Sequence[str], *, detach: bool = False, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the child without waiting for it (see `spawn_logged` for `detach` and `env`)."""
        if self.running():
            raise StackError(f"{self.label} already running")
        self.process = spawn_logged(cmd, self.log_file, detach=detach, env=env)
        return self.process

    def wait_ready(self, probe: Probe, *, timeout_s: float, interval_s: float = 0.25) -> None:
        """Ask `probe` until it answers None; fail at once with the log tail if the child exits first."""
        if self.process is None:
            raise StackError(f"{self.label} not started")
        deadline = time.monotonic() + timeout_s
        why = "no answer yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ProcessExitedError(
                    f"{self.label} exited early with code {code}; log tail:\n{self.log_tail()}"
                )
            answer = probe()
            if answer is None:
                return
            why = answer
            # Waiting on the child doubles as the poll interval and returns at once if it dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=interval_s)
        raise NotReadyError(
            f"{self.label} not ready after {timeout_s:g} s ({why}); log tail:\n{self.log_tail()}"
        )

    def launch(
        self,
        cmd: Sequence[str],
        probe: Probe,
        *,
        timeout_s: float,
        interval_s: float = 0.25,
        detach: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`spawn`, then `wait_ready`; a child that does not become ready is stopped, not left behind."""
        self.spawn(cmd, detach=detach, env=env)
        try:
            self.wait_ready(probe, timeout_s=timeout_s, interval_s=interval_s)
        except BaseException:
            self.stop()
            raise

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) without waiting; `reap` waits."""
        if self.running():
            assert self.process is not None
            self.process.terminate()

    def reap(self, *, timeout_s: float | None = None) -> None:
        """Wait for the child to exit, SIGKILL it past `timeout_s` (default: `stop_timeout_s`)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            process.wait(timeout=self.stop_timeout_s if timeout_s is None else timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self, *, timeout_s: float | None = None) -> None:
        """SIGTERM the child, SIGKILL it if it has not exited within `timeout_s`."""
        self.terminate()
        self.reap(timeout_s=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
