"""Graph compaction: per tenant, drop what deleted documents left behind and entities without support."""

from __future__ import annotations

from services.graph_builder.domain import GraphCompaction
from services.graph_builder.ports import GraphMaintenance


def compact_graph(store: GraphMaintenance) -> list[GraphCompaction]:
    """Compact every tenant's graph, one transaction each, so no tenant waits for another's sweep."""
    return [store.compact(tenant=tenant) for tenant in store.tenants()]
