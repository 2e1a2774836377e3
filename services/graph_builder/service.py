"""The graph-builder use case: one embedded chunk set in, the graph updated, the enriched chunk set out."""

from __future__ import annotations

import logging

from schemas import ChangeOp, ChunkMention, ChunksEmbedded, ChunksEnriched
from services.graph_builder.domain import DocumentGraph
from services.graph_builder.errors import RecognizerRequired
from services.graph_builder.logic import ExtractOptions, enrich, extract
from services.graph_builder.ports import EntityRecognizer, GraphStore

logger = logging.getLogger(__name__)


def build_graph_for(
    event: ChunksEmbedded,
    *,
    recognizer: EntityRecognizer | None,
    store: GraphStore,
    options: ExtractOptions | None = None,
) -> ChunksEnriched:
    """Apply the event's version to the tenant graph (a delete removes it) and return the enriched event."""
    if event.op is ChangeOp.DELETE:
        store.remove_document(tenant=event.tenant, document_id=event.document_id, version=event.version)
        return enrich(event, DocumentGraph())
    graph = extract(event, collect_mentions(event, recognizer=recognizer), options=options)
    applied = store.apply_document(
        tenant=event.tenant, document_id=event.document_id, version=event.version, graph=graph
    )
    if not applied:
        # Still enriched and passed on: the indexer fences versions itself, and the entities are right for it.
        logger.info(
            "graph: %s/%s v%d is not newer than the stored version",
            event.tenant,
            event.document_id,
            event.version,
        )
    return enrich(event, graph)


def collect_mentions(
    event: ChunksEmbedded, *, recognizer: EntityRecognizer | None
) -> dict[str, list[ChunkMention]]:
    """Mentions per chunk id: the upstream ones where present, the recognizer's (one batch) elsewhere."""
    out = {c.chunk_id: list(c.mentions) for c in event.chunks if c.mentions is not None}
    missing = [c for c in event.chunks if c.mentions is None]
    if missing:
        if recognizer is None:
            raise RecognizerRequired(
                f"{len(missing)} chunks carry no mentions and no recognizer is configured"
            )
        found = recognizer.recognize_batch([c.text for c in missing])
        out.update((c.chunk_id, ms) for c, ms in zip(missing, found, strict=True))
    return out
