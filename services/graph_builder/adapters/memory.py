"""In-memory GraphStore with the Postgres store's semantics, for unit tests of any stage."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from services.graph_builder import canonical
from services.graph_builder.domain import ChunkSupport, DocumentGraph, Edge, EntityRecord, GraphCompaction


@dataclass(frozen=True, slots=True)
class _Doc:
    version: int
    graph: DocumentGraph  # empty for a tombstone


class MemoryGraphStore:
    """Fenced per-document versions, tombstones and pruning, in dictionaries keyed by tenant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, dict[str, _Doc]] = defaultdict(dict)
        self._entities: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)  # id → (label, name)

    def apply_document(self, *, tenant: str, document_id: str, version: int, graph: DocumentGraph) -> bool:
        with self._lock:
            current = self._docs[tenant].get(document_id)
            if current is not None and current.version >= version:
                return False
            self._docs[tenant][document_id] = _Doc(version, graph)
            for e in graph.entities:
                self._entities[tenant][e.entity_id] = (e.label, e.name)
            self._prune(tenant)
            return True

    def remove_document(self, *, tenant: str, document_id: str, version: int) -> bool:
        return self.apply_document(
            tenant=tenant, document_id=document_id, version=version, graph=DocumentGraph()
        )

    def document_version(self, *, tenant: str, document_id: str) -> int | None:
        """Stored version of a document, tombstones included (a test helper)."""
        doc = self._docs.get(tenant, {}).get(document_id)
        return doc.version if doc else None

    def tenants(self) -> list[str]:
        """Every tenant with entities, support or relations, sorted."""
        with self._lock:
            docs = {
                t
                for t, ds in self._docs.items()
                if any(d.graph.support or d.graph.relations for d in ds.values())
            }
            return sorted(docs | {t for t, es in self._entities.items() if es})

    def compact(self, *, tenant: str) -> GraphCompaction:
        """Support and relations live inside each document's graph here, and a tombstone's graph is empty,
        so nothing can dangle; only unsupported entities could remain, and every write prunes those."""
        with self._lock:
            before = len(self._entities.get(tenant, {}))
            self._prune(tenant)
            return GraphCompaction(
                tenant=tenant, support=0, relations=0, entities=before - len(self._entities[tenant])
            )

    def entity(self, *, tenant: str, entity_id: str) -> EntityRecord | None:
        found = self.entities(tenant=tenant, entity_ids=[entity_id])
        return found[0] if found else None

    def entities(self, *, tenant: str, entity_ids: Sequence[str]) -> list[EntityRecord]:
        with self._lock:
            known = self._entities.get(tenant, {})
            counts = self._chunk_counts(tenant)
            return [
                self._record(eid, known[eid], counts) for eid in dict.fromkeys(entity_ids) if eid in known
            ]

    def find_entities(
        self, *, tenant: str, names_or_ids: Sequence[str], limit: int = 20
    ) -> list[EntityRecord]:
        wanted = {q for name in names_or_ids for q in canonical.query_slugs(name)}
        with self._lock:
            counts = self._chunk_counts(tenant)
            found = [
                self._record(eid, le, counts)
                for eid, le in self._entities.get(tenant, {}).items()
                if (le[0], eid.split(":", 1)[1]) in wanted or (None, eid.split(":", 1)[1]) in wanted
            ]
        return sorted(found, key=lambda r: (-r.chunk_count, r.entity_id))[:limit]

    def chunks_for_entities(
        self, *, tenant: str, entity_ids: Sequence[str], limit: int
    ) -> list[ChunkSupport]:
        wanted = set(entity_ids)
        hits: defaultdict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        with self._lock:
            for document_id, doc in self._docs.get(tenant, {}).items():
                for s in doc.graph.support:
                    if s.entity_id in wanted:
                        hits[(document_id, s.chunk_id)].append((s.entity_id, s.mentions))
        out = [
            ChunkSupport(
                chunk_id=chunk,
                document_id=doc,
                entity_ids=tuple(sorted(e for e, _ in es)),
                mentions=sum(n for _, n in es),
            )
            for (doc, chunk), es in hits.items()
        ]
        return sorted(out, key=lambda c: (-len(c.entity_ids), -c.mentions, c.document_id, c.chunk_id))[:limit]

    def edges_around(
        self, *, tenant: str, entity_ids: Sequence[str], limit: int, min_weight: float = 0.0
    ) -> list[Edge]:
        seeds = set(entity_ids)
        summed: defaultdict[tuple[str, str, str], float] = defaultdict(float)
        with self._lock:
            for r in self._relations(tenant):
                if r[0] in seeds or r[1] in seeds:
                    summed[r[:3]] += r[3]
        pair_totals: defaultdict[tuple[str, str], float] = defaultdict(float)
        for (src, dst, _), w in summed.items():
            for seed, other in ((src, dst), (dst, src)):
                if seed in seeds:
                    pair_totals[(seed, other)] += w
        ranked: defaultdict[str, list[tuple[float, str]]] = defaultdict(list)
        for (seed, other), total in pair_totals.items():
            if total >= min_weight:
                ranked[seed].append((-total, other))
        keep = {frozenset((seed, o)) for seed, rs in ranked.items() for _, o in sorted(rs)[:limit]}
        edges = [
            Edge(src=s, dst=d, relation=r, weight=w)
            for (s, d, r), w in summed.items()
            if frozenset((s, d)) in keep
        ]
        return sorted(edges, key=lambda e: (-e.weight, e.src, e.dst, e.relation))

    def _relations(self, tenant: str) -> Iterator[tuple[str, str, str, float]]:
        for doc in self._docs.get(tenant, {}).values():
            for r in doc.graph.relations:
                yield r.src, r.dst, r.relation, r.weight

    def _chunk_counts(self, tenant: str) -> Counter[str]:
        return Counter(s.entity_id for doc in self._docs.get(tenant, {}).values() for s in doc.graph.support)

    def _prune(self, tenant: str) -> None:
        supported = self._chunk_counts(tenant)
        self._entities[tenant] = {e: v for e, v in self._entities[tenant].items() if supported[e] > 0}

    @staticmethod
    def _record(eid: str, label_name: tuple[str, str], counts: Counter[str]) -> EntityRecord:
        return EntityRecord(entity_id=eid, label=label_name[0], name=label_name[1], chunk_count=counts[eid])
