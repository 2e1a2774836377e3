"""Ports of the graph builder: entity recognition and the graph store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from schemas import ChunkMention
from services.graph_builder.domain import ChunkSupport, DocumentGraph, Edge, EntityRecord, GraphCompaction


class EntityRecognizer(Protocol):
    def recognize_batch(self, texts: Sequence[str]) -> list[list[ChunkMention]]:
        """Named-entity mentions of each text, in order; offsets index into that text."""
        ...


class GraphStore(Protocol):
    """A tenant-scoped knowledge graph updated one document version at a time."""

    def apply_document(self, *, tenant: str, document_id: str, version: int, graph: DocumentGraph) -> bool:
        """Replace the document's contribution atomically; False when `version` is not newer than stored."""
        ...

    def remove_document(self, *, tenant: str, document_id: str, version: int) -> bool:
        """Drop the document's contribution and keep a tombstone; False when `version` is not newer."""
        ...

    def entity(self, *, tenant: str, entity_id: str) -> EntityRecord | None: ...

    def entities(self, *, tenant: str, entity_ids: Sequence[str]) -> list[EntityRecord]:
        """The known entities among `entity_ids`, in no particular order."""
        ...

    def find_entities(
        self, *, tenant: str, names_or_ids: Sequence[str], limit: int = 20
    ) -> list[EntityRecord]:
        """Entities whose id or normalised name matches, best supported first."""
        ...

    def chunks_for_entities(
        self, *, tenant: str, entity_ids: Sequence[str], limit: int
    ) -> list[ChunkSupport]:
        """Chunks mentioning the entities, those with the most of them (then most mentions) first."""
        ...

    def edges_around(
        self, *, tenant: str, entity_ids: Sequence[str], limit: int, min_weight: float = 0.0
    ) -> list[Edge]:
        """Relations of the top-`limit` neighbours (by summed weight ≥ `min_weight`) of each entity."""
        ...


class GraphMaintenance(Protocol):
    """Housekeeping of a graph store, run apart from the graph stage's writes."""

    def tenants(self) -> list[str]:
        """Every tenant with entities, support or relations, sorted."""
        ...

    def compact(self, *, tenant: str) -> GraphCompaction:
        """Remove the tenant's support and relations of deleted documents and entities left without
        support, safely beside concurrent writers; a second run removes nothing."""
        ...
