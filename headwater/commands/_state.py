"""The runtime's state stores, opened for one command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg


class _Store(Protocol):
    def ensure_schema(self) -> None: ...

    def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=_Store)


@contextmanager
def state_store(
    home: Path, make: Callable[[Callable[[], psycopg.Connection[Any]]], StoreT]
) -> Iterator[StoreT]:
    """A store of the runtime at `home` (`HEADWATER_DATABASE_URL`, else its embedded Postgres), its
    tables created if missing, closed afterwards."""
    from headwater.config import HeadwaterSettings
    from headwater.postgres import state_connector

    store = make(state_connector(HeadwaterSettings(home=home)))
    store.ensure_schema()
    try:
        yield store
    finally:
        store.close()
