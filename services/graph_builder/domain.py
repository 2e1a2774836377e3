"""Knowledge-graph values: what extraction produces, what the store returns, and traversal results."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

# Relation names of the two co-occurrence kinds; typed relations use a verb label such as `acquired`.
CO_SENTENCE = "co_sentence"
CO_CHUNK = "co_chunk"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """A canonical entity of one document: `entity_id` is `<group>:<slug>`, unique within a tenant."""

    entity_id: str
    label: str  # the label group: org, place, person, product, event, work, law, group
    name: str  # display name: the most frequent surface form
    aliases: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return self.entity_id.split(":", 1)[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Support:
    """`mentions` occurrences of an entity in one chunk."""

    entity_id: str
    chunk_id: str
    mentions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Relation:
    """A weighted edge; co-occurrence edges are stored with `src < dst`, typed ones subject → object."""

    src: str
    dst: str
    relation: str
    weight: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentGraph:
    """Everything one document version contributes to its tenant's graph."""

    entities: tuple[Entity, ...] = ()
    support: tuple[Support, ...] = ()
    relations: tuple[Relation, ...] = ()

    def chunks_by_entity(self) -> dict[str, dict[str, int]]:
        """Entity id → chunk id → mention count."""
        out: dict[str, dict[str, int]] = {}
        for s in self.support:
            out.setdefault(s.entity_id, {})[s.chunk_id] = s.mentions
        return out

    def entities_by_chunk(self) -> dict[str, list[str]]:
        """Chunk id → entity ids, most mentioned first."""
        out: dict[str, list[tuple[int, str]]] = {}
        for s in self.support:
            out.setdefault(s.chunk_id, []).append((-s.mentions, s.entity_id))
        return {chunk: [e for _, e in sorted(pairs)] for chunk, pairs in out.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityRecord:
    """An entity as stored for a tenant, with the number of chunks that support it."""

    entity_id: str
    label: str
    name: str
    chunk_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkSupport:
    """A chunk that mentions some of the asked entities."""

    chunk_id: str
    document_id: str
    entity_ids: tuple[str, ...]
    mentions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """A relation summed over every document of a tenant."""

    src: str
    dst: str
    relation: str
    weight: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphCompaction:
    """What one compaction of a tenant's graph removed."""

    tenant: str
    support: int  # chunk support rows of documents that are deleted or unknown
    relations: int  # relations of such documents, or with an endpoint the document no longer supports
    entities: int  # entities no chunk supports any more


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubgraphNode(_Wire):
    entity_id: str
    label: str
    name: str
    hop: int  # distance from the root


class SubgraphEdge(_Wire):
    src: str
    dst: str
    weight: float  # every relation between the pair, summed
    relations: dict[str, float]


class Subgraph(_Wire):
    """A bounded neighbourhood of one entity, ready to serialise."""

    root: str
    hops: int
    nodes: list[SubgraphNode]
    edges: list[SubgraphEdge]
