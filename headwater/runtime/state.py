"""The runtime's state database, from settings: `HEADWATER_DATABASE_URL`, else the embedded Postgres under
the runtime's home."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from headwater.config import HeadwaterSettings
from headwater.kernel.postgres import connector, embedded_postgres_url


def state_connector(settings: HeadwaterSettings) -> Callable[[], psycopg.Connection[Any]]:
    """Connections to the runtime's state database (the embedded server is started, or joined, on the
    first call)."""
    url = settings.database_url or embedded_postgres_url(settings.postgres_dir)
    return connector(url, schema=settings.database_schema)
