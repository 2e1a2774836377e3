"""The knowledge graph as a third retriever: entities named in the query anchor a bounded expansion over
the tenant's graph, and the chunks mentioning the reached entities become a ranked list.

The list holds chunk ids only. The query service fetches those chunks through the index with the
caller's full filter (tenant, ACL, live state, metadata), so the graph never surfaces a chunk the
caller could not have found by vector search.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from headwater.kernel.stopwords import STOPWORDS
from services.graph_builder import canonical
from services.graph_builder.domain import ChunkSupport, EntityRecord
from services.graph_builder.graph import MAX_FANOUT, expand_entities
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.indexer.ports import point_id

_WORD = re.compile(r"[^\W_]+(?:[-.'’/][^\W_]+)*")


class QueryLinker(Protocol):
    """Finds the entities of a tenant's graph that a query names."""

    def link(self, store: GraphStore, tenant: str, query: str) -> list[EntityRecord]: ...


def query_phrases(query: str, *, max_words: int = 4) -> list[str]:
    """Contiguous word n-grams of the query (up to `max_words`) that may be an entity's name:
    none starts or ends with a stopword ("the risk of") or is a bare number."""
    words = _WORD.findall(query)
    phrases: dict[str, None] = {}
    for n in range(1, max_words + 1):
        for start in range(len(words) - n + 1):
            gram = words[start : start + n]
            if gram[0].lower() in STOPWORDS or gram[-1].lower() in STOPWORDS:
                continue
            if n == 1 and gram[0].isdigit():
                continue
            phrases[" ".join(gram)] = None
    return list(phrases)


@dataclass(frozen=True)
class GazetteerLinker:
    """Matches every phrase of the query against the names the tenant's graph already holds
    (normalised as the graph normalises them). One store query; no model."""

    max_words: int = 4
    limit: int = 20

    def link(self, store: GraphStore, tenant: str, query: str) -> list[EntityRecord]:
        phrases = query_phrases(query, max_words=self.max_words)
        if not phrases:
            return []
        return store.find_entities(tenant=tenant, names_or_ids=phrases, limit=self.limit)


@dataclass(frozen=True)
class NerLinker:
    """The graph stage's own recogniser run over the query; its mentions are looked up by name."""

    recognizer: EntityRecognizer
    limit: int = 20

    def link(self, store: GraphStore, tenant: str, query: str) -> list[EntityRecord]:
        (mentions,) = self.recognizer.recognize_batch([query])
        names = [m.text for m in mentions if canonical.group_of(m) is not None]
        if not names:
            return []
        return store.find_entities(tenant=tenant, names_or_ids=names, limit=self.limit)


@dataclass(frozen=True)
class GraphHits:
    """What the graph contributed to one query: the entities it recognised and chunks by graph score."""

    entities: list[EntityRecord]
    chunks: list[tuple[str, str, float]]  # (document id, chunk id, score), best first


def specificity(chunk_count: int) -> float:
    """Weight of an entity by how few chunks mention it: a name found everywhere says little."""
    return 1.0 / math.log2(2 + max(0, chunk_count))


def score_chunks(
    supports: Sequence[ChunkSupport], entity_scores: dict[str, float], *, limit: int
) -> list[tuple[str, str, float]]:
    """Chunks ranked by the summed scores of the reached entities they mention (mentions break ties)."""
    scored = [
        (s.document_id, s.chunk_id, sum(entity_scores.get(e, 0.0) for e in s.entity_ids), s.mentions)
        for s in supports
    ]
    scored.sort(key=lambda row: (-row[2], -row[3], row[0], row[1]))
    return [(doc, chunk, score) for doc, chunk, score, _ in scored[:limit] if score > 0]


@dataclass(frozen=True)
class GraphRetriever:
    """Seed entities from the query, expand them `hops` steps (at most `fanout` neighbours a node),
    weight each reached entity by its expansion score and its specificity, rank the chunks."""

    store: GraphStore
    linker: QueryLinker
    fanout: int = 10
    decay: float = 0.5
    max_entities: int = 50
    max_supports: int = 1000  # chunks read from the store before ranking

    def __post_init__(self) -> None:
        if not 1 <= self.fanout <= MAX_FANOUT:
            raise ValueError(f"fanout must be between 1 and {MAX_FANOUT}")

    def retrieve(self, tenant: str, query: str, *, hops: int, limit: int) -> GraphHits:
        seeds = self.linker.link(self.store, tenant, query)
        if not seeds:
            return GraphHits(entities=[], chunks=[])
        reached = expand_entities(
            self.store,
            tenant,
            [s.entity_id for s in seeds],
            hops=hops,
            fanout=self.fanout,
            decay=self.decay,
            limit=self.max_entities,
        )
        known = {s.entity_id: s for s in seeds}
        others = [e for e, _ in reached if e not in known]
        known.update((r.entity_id, r) for r in self.store.entities(tenant=tenant, entity_ids=others))
        weights = {e: score * specificity(known[e].chunk_count) for e, score in reached if e in known}
        supports = self.store.chunks_for_entities(
            tenant=tenant, entity_ids=list(weights), limit=self.max_supports
        )
        return GraphHits(entities=seeds, chunks=score_chunks(supports, weights, limit=limit))


def chunk_point_ids(tenant: str, chunks: Sequence[tuple[str, str, float]]) -> dict[str, float]:
    """Index point id → graph score of each chunk, best first (point ids are derived, never stored)."""
    return {point_id(tenant=tenant, document_id=doc, chunk_id=chunk): score for doc, chunk, score in chunks}
