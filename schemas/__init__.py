"""Wire contracts between Headwater's stages: versioned pydantic models, topics and partition keys."""

from schemas.chunks import (
    Chunk,
    ChunkEntities,
    ChunkMention,
    ChunksCreated,
    ChunksEmbedded,
    ChunksEnriched,
    ChunkVectors,
    SparseVector,
)
from schemas.common import (
    ChangeOp,
    Contract,
    DocumentHeader,
    DocumentKey,
    SourceKind,
    SourceRef,
    VersionKind,
    partition_key,
)
from schemas.dead_letters import DeadLetter
from schemas.documents import (
    Accepted,
    BlockKind,
    DocumentChanged,
    DocumentRedacted,
    EntityMention,
    IngestDocument,
    TextBlock,
)
from schemas.search import MatchFilter, RangeFilter, SearchFilters, SearchHit, SearchMode, SearchPage, SearchRequest

__all__ = [
    "Accepted",
    "BlockKind",
    "ChangeOp",
    "Chunk",
    "ChunkEntities",
    "ChunkMention",
    "ChunkVectors",
    "ChunksCreated",
    "ChunksEmbedded",
    "ChunksEnriched",
    "Contract",
    "DeadLetter",
    "DocumentChanged",
    "DocumentHeader",
    "DocumentKey",
    "DocumentRedacted",
    "EntityMention",
    "IngestDocument",
    "MatchFilter",
    "RangeFilter",
    "SearchFilters",
    "SearchHit",
    "SearchMode",
    "SearchPage",
    "SearchRequest",
    "SourceKind",
    "SourceRef",
    "SparseVector",
    "TextBlock",
    "VersionKind",
    "partition_key",
]
