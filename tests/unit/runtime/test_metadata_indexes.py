"""The runtime indexes the metadata keys its settings name, on the collection it creates and on every
later start, so adding a key to HEADWATER_METADATA_INDEXES takes effect on the next restart."""

from __future__ import annotations

from headwater.config import HeadwaterSettings
from services.embedder.adapters.fake import HashingBackend
from services.indexer.adapters.memory import InMemoryIndex
from services.indexer.handlers import IndexStage


def _stage(settings: HeadwaterSettings, index: InMemoryIndex) -> IndexStage:
    """The indexing stage as a runtime builds it from its settings."""
    backend = HashingBackend()
    return IndexStage(
        index=index,
        alias=settings.collection_alias,
        metadata_indexes=settings.metadata_indexes,
        default_model=(backend.model_id, backend.dimension),
    )


def test_configured_metadata_keys_are_indexed_on_creation_and_on_every_start() -> None:
    index = InMemoryIndex()
    first = HeadwaterSettings(metadata_indexes={"year": "integer"})
    created = _stage(first, index).ensure_collection()
    assert index.metadata_indexes == {(created, "year"): "integer"}

    later = HeadwaterSettings(metadata_indexes={"year": "integer", "team": "keyword"})
    again = _stage(later, index).ensure_collection()
    assert again == created
    assert index.metadata_indexes == {(created, "year"): "integer", (created, "team"): "keyword"}
