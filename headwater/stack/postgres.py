"""A local Postgres server to capture changes from: `wal_level=logical`, a replication role, pg_hba for it.

This is the source side of CDC (the database that owns the data), not Headwater's own state store. It
runs the distribution's server binaries (Debian: /usr/lib/postgresql/<major>/bin), which Debezium's
connector supports (14-17). As root, the server runs as the `postgres` system user, which initdb and
the server require.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from headwater.stack.process import StackError, free_port, log_tail, run_tool

__all__ = ["CdcPostgres", "find_postgres_bin"]

SUPERUSER = "postgres"
REPLICATION_ROLE = "headwater_cdc"


def find_postgres_bin(preferred: Path | None = None) -> Path:
    """The folder with initdb/pg_ctl: `preferred`, $HEADWATER_CDC_POSTGRES_BIN, or the newest supported."""
    candidates: list[Path] = []
    if preferred is not None:
        candidates.append(preferred)
    if env := os.environ.get("HEADWATER_CDC_POSTGRES_BIN"):
        candidates.append(Path(env))
    # Debezium 3.x documents PostgreSQL 14 to 17.
    candidates += [Path(f"/usr/lib/postgresql/{major}/bin") for major in (17, 16, 15, 14)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise StackError(
        "no Postgres server binaries found (initdb, pg_ctl); install the distribution's postgresql "
        "package or set HEADWATER_CDC_POSTGRES_BIN"
    )


@dataclass
class CdcPostgres:
    """A Postgres cluster in `home` for Debezium to read; passwords are kept in `home/credentials`."""

    home: Path
    bin_dir: Path | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.bin_dir = find_postgres_bin(self.bin_dir)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def _password(self, role: str) -> str:
        path = self.home / "credentials" / role
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(16))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def replication_password(self) -> str:
        return self._password(REPLICATION_ROLE)

    def url(self, *, database: str = "postgres", user: str = SUPERUSER) -> str:
        if self.port is None:
            raise StackError("postgres not started")
        return f"postgresql://{user}:{self._password(user)}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        return run_tool([str(self.bin_dir / argv[0]), *argv[1:]], what=argv[0], **_as_server_user())

    def _initdb(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / "credentials" / SUPERUSER
        self._password(SUPERUSER)
        owner = _server_user()
        if owner is not None:
            entry = pwd.getpwnam(owner)
            for path in (self.home, pwfile.parent, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            _allow_traversal(self.home.parent)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        # Logical decoding for Debezium (pgoutput is built in), a few slots and senders to spare.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# headwater: a CDC source\n"
                "wal_level = logical\n"
                "max_replication_slots = 10\n"
                "max_wal_senders = 10\n"
                "listen_addresses = '127.0.0.1'\n"
            )
        # Logical replication (Debezium) matches the database lines initdb wrote (`host all all`); this
        # line lets the role use physical tools too (pg_receivewal, pg_basebackup).
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host replication {REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256\n")

    def start(self, *, port: int | None = None) -> CdcPostgres:
        """Initialise the cluster on first use, start it and make sure the replication role exists."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self.port = port or self.port or free_port()
        if self.running():
            self.stop()
        # pg_ctl daemonises the server (it outlives `headwater stack up`), waits until it accepts
        # connections (-w) and notices an early exit; why it exited is in the server's own log.
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {self.port} -k {self.home}",
                "-w",
                "-t",
                "60",
                "start",
            )
        except StackError as exc:
            raise StackError(f"{exc}\nlog tail:\n{log_tail(self.log_file)}") from exc
        self._ensure_replication_role()
        return self

    def _ensure_replication_role(self) -> None:
        password = self.replication_password
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATION_ROLE,)).fetchone()
            verb = psycopg.sql.SQL("ALTER" if exists else "CREATE")
            conn.execute(
                psycopg.sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                    verb, psycopg.sql.Identifier(REPLICATION_ROLE), psycopg.sql.Literal(password)
                )
            )

    def running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        assert self.bin_dir is not None
        status = subprocess.run(  # noqa: S603 - fixed argv
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True,
            check=False,
            **_as_server_user(),
        )
        return status.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (open sessions are ended, nothing committed is lost)."""
        if self.running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create `name` if missing, owned by the superuser; returns its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.url(database=name)


def _as_server_user() -> dict[str, Any]:
    """subprocess arguments that drop root for the server user, groups included (root's group would
    otherwise decide access to root-owned folders)."""
    name = _server_user()
    if name is None:
        return {}
    entry = pwd.getpwnam(name)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _allow_traversal(folder: Path) -> None:
    """Let the server user reach `folder` (e.g. under pytest's 0700 temp root): execute bit only."""
    for path in (folder, *folder.parents):
        mode = path.stat().st_mode
        if not mode & 0o001:
            path.chmod(mode | 0o001)


def _server_user() -> str | None:
    """initdb and postgres refuse to run as root: run them as the `postgres` system user then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    if shutil.which("useradd") is None:
        raise StackError("running as root needs a `postgres` system user for the server")
    subprocess.run(["useradd", "-r", "-s", "/bin/false", "postgres"], check=True)  # noqa: S607
    return "postgres"
