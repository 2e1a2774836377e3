"""The store contract on the in-memory fake, through the service."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.graph_builder.adapters.memory import MemoryGraphStore
from services.graph_builder.ports import GraphStore
from tests.unit.graph_builder.store_contract import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_memory_store(scenario: Callable[[GraphStore], None]) -> None:
    scenario(MemoryGraphStore())
