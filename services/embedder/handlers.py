"""The embedding stage's handler, called alike by the embedded runtime's thread and the Kafka consumer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from headwater.observability import metrics
from schemas import ChunksCreated, ChunksEmbedded
from services.embedder.config import EmbedderSettings
from services.embedder.logic import embed_chunk_sets
from services.embedder.ports import EmbeddingBackend, EmbeddingCache
from services.embedder.sparse import SparseEncoder

logger = logging.getLogger(__name__)


@dataclass
class EmbedStage:
    """Chunk sets in, dense and sparse vectors out, through the content-hash cache."""

    backend: EmbeddingBackend
    cache: EmbeddingCache
    sparse: SparseEncoder
    settings: EmbedderSettings

    def __call__(self, sets: list[ChunksCreated]) -> list[ChunksEmbedded]:
        tokens = {c.text: c.token_count for s in sets for c in s.chunks}
        return embed_chunk_sets(
            sets,
            backend=metrics.MeteredBackend(self.backend, tokens),
            cache=self.cache,
            sparse=self.sparse,
            max_batch_tokens=self.settings.max_batch_tokens,
            max_batch_size=self.settings.max_batch_size,
        )

    def use(self, backend: EmbeddingBackend) -> None:
        """Embed with another model from the next batch on (a model migration's readers moved to it)."""
        if backend.model_id != self.backend.model_id:
            self.backend = backend
            logger.info("embedding stage now embeds with %s", backend.model_id)
