"""Postgres seen from a second session: a plain connection like another process's, and the advisory
locks sessions are waiting for, to show that one writer really waits for another."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import psycopg

from tests.waiting import wait_until


def session(url: str, schema: str) -> psycopg.Connection[Any]:
    """An autocommit connection in `schema` that creates nothing and takes no lock on opening."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
    return conn


def waiting_advisory_locks(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
    return int(row[0]) if row else 0


def wait_for_a_lock_wait(observer: psycopg.Connection[Any], work: Future[Any]) -> None:
    """Return once some session waits for an advisory lock, or `work` has finished (without waiting)."""
    wait_until(lambda: waiting_advisory_locks(observer) > 0 or work.done())
