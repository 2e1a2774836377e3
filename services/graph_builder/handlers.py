"""The graph stage's handler, called alike by the embedded runtime's thread and the Kafka consumer."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import ChunksEmbedded, ChunksEnriched
from services.graph_builder.ports import EntityRecognizer, GraphStore
from services.graph_builder.service import build_graph_for


@dataclass
class EnrichStage:
    """Embedded chunk sets in, the graph updated, enriched chunk sets out. The recognizer is needed only
    for chunks that redaction did not already supply mentions for."""

    store: GraphStore
    recognizer: EntityRecognizer | None = None

    def __call__(self, sets: list[ChunksEmbedded]) -> list[ChunksEnriched]:
        return [build_graph_for(s, recognizer=self.recognizer, store=self.store) for s in sets]
