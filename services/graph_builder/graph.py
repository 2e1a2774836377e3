"""Bounded traversal of a tenant's graph: the store is read one frontier at a time, into a networkx graph."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import networkx as nx

from services.graph_builder.domain import Subgraph, SubgraphEdge, SubgraphNode
from services.graph_builder.errors import InvalidTraversal, UnknownEntity
from services.graph_builder.ports import GraphStore

MAX_HOPS = 2
MAX_FANOUT = 100


def neighbourhood(
    store: GraphStore,
    tenant: str,
    entity_id: str,
    *,
    hops: int = 1,
    fanout: int = 10,
    min_weight: float = 0.0,
) -> Subgraph:
    """Nodes within `hops` of an entity, keeping the `fanout` heaviest neighbours of each node reached."""
    if store.entity(tenant=tenant, entity_id=entity_id) is None:
        raise UnknownEntity(entity_id)
    g, hop_of = _bounded_graph(store, tenant, [entity_id], hops=hops, fanout=fanout, min_weight=min_weight)
    records = {r.entity_id: r for r in store.entities(tenant=tenant, entity_ids=sorted(g.nodes))}
    g.remove_nodes_from([n for n in list(g.nodes) if n not in records])  # pruned by a concurrent writer
    nodes = [
        SubgraphNode(entity_id=n, label=records[n].label, name=records[n].name, hop=hop_of[n])
        for n in sorted(g.nodes, key=lambda n: (hop_of[n], n))
    ]
    edges = [
        SubgraphEdge(src=u, dst=v, weight=data["weight"], relations=dict(data["relations"]))
        for u, v, data in sorted((min(u, v), max(u, v), d) for u, v, d in g.edges(data=True))
    ]
    return Subgraph(root=entity_id, hops=hops, nodes=nodes, edges=edges)


def expand_entities(
    store: GraphStore,
    tenant: str,
    seed_ids: Sequence[str],
    *,
    hops: int = 1,
    fanout: int = 10,
    decay: float = 0.5,
    min_weight: float = 0.0,
    limit: int = 50,
) -> list[tuple[str, float]]:
    """Seeds (score 1) and neighbours: parent score × `decay` × edge weight / the parent's heaviest edge."""
    seeds = list(dict.fromkeys(seed_ids))
    g, hop_of = _bounded_graph(store, tenant, seeds, hops=hops, fanout=fanout, min_weight=min_weight)
    score: dict[str, float] = dict.fromkeys(seeds, 1.0)
    for hop in range(1, hops + 1):
        reached: defaultdict[str, float] = defaultdict(float)
        for u in (n for n, h in hop_of.items() if h == hop - 1):
            heaviest = max((g[u][v]["weight"] for v in g[u]), default=0.0)
            for v in g[u]:
                if hop_of[v] == hop:
                    # Summed over parents: an entity tied to several seeds outranks one tied to a single seed.
                    reached[v] += score[u] * decay * g[u][v]["weight"] / heaviest
        score.update(reached)
    return sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _bounded_graph(
    store: GraphStore, tenant: str, seeds: Sequence[str], *, hops: int, fanout: int, min_weight: float
) -> tuple[nx.Graph, dict[str, int]]:
    if not 1 <= hops <= MAX_HOPS:
        raise InvalidTraversal(f"hops must be between 1 and {MAX_HOPS}")
    if not 1 <= fanout <= MAX_FANOUT:
        raise InvalidTraversal(f"fanout must be between 1 and {MAX_FANOUT}")
    g = nx.Graph()
    g.add_nodes_from(seeds)
    hop_of = dict.fromkeys(seeds, 0)
    loaded: set[tuple[str, str, str]] = set()
    frontier = list(seeds)
    for hop in range(1, hops + 1):
        if not frontier:
            break
        edges = store.edges_around(tenant=tenant, entity_ids=frontier, limit=fanout, min_weight=min_weight)
        frontier = []
        for e in edges:
            if (e.src, e.dst, e.relation) in loaded:
                continue  # an edge back to an earlier layer comes again with the next frontier
            loaded.add((e.src, e.dst, e.relation))
            for n in (e.src, e.dst):
                if n not in hop_of:
                    hop_of[n] = hop
                    frontier.append(n)
            if not g.has_edge(e.src, e.dst):
                g.add_edge(e.src, e.dst, weight=0.0, relations={})
            data = g[e.src][e.dst]
            data["weight"] += e.weight
            data["relations"][e.relation] = data["relations"].get(e.relation, 0.0) + e.weight
    return g, hop_of
