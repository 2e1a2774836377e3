"""The chunking stage's handler, called alike by the embedded runtime's thread and the Kafka consumer."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.kernel.model_files import count_tokens
from schemas import ChunksCreated, DocumentRedacted
from services.chunker.config import ChunkerSettings
from services.chunker.logic import CountTokens, EncodeSentences, chunk_documents


@dataclass
class ChunkStage:
    """Redacted documents in, chunk sets out. `encode` scores cut points: it stays the model the chunker
    was tuned with, whatever model later embeds the chunks."""

    settings: ChunkerSettings
    encode: EncodeSentences
    count_tokens: CountTokens = count_tokens
    chunks_created: int = 0

    def __call__(self, docs: list[DocumentRedacted]) -> list[ChunksCreated]:
        sets = chunk_documents(
            docs, settings=self.settings, count_tokens=self.count_tokens, encode=self.encode
        )
        self.chunks_created += sum(len(s.chunks) for s in sets)
        return sets
