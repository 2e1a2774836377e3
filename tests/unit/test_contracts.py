"""The wire contracts: validation rules, partition keys, and exported JSON Schemas in sync."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import (
    ChangeOp,
    Chunk,
    ChunksEmbedded,
    ChunkVectors,
    DocumentChanged,
    IngestDocument,
    SourceKind,
    SourceRef,
    SparseVector,
    TextBlock,
    partition_key,
)
from schemas.export import EXPORTED, SCHEMA_DIR, render
from schemas.topics import PIPELINE, dead_letter_topic


def test_exported_json_schemas_match_the_models() -> None:
    for name, model in EXPORTED.items():
        path = SCHEMA_DIR / f"{name}.v1.schema.json"
        assert path.read_text() == render(model), f"{path.name} is stale: run python -m schemas.export"


def test_partition_key_keeps_one_document_on_one_key_and_separates_tenants() -> None:
    assert partition_key("acme", "doc-1") == partition_key("acme", "doc-1")
    assert partition_key("acme", "doc-1") != partition_key("globex", "doc-1")
    # A tenant id cannot contain "/", so no (tenant, id) pair can collide with another.
    with pytest.raises(ValidationError):
        IngestDocument(tenant="acme/x", document_id="1", text="t")


def test_upsert_needs_exactly_one_body_and_delete_none() -> None:
    with pytest.raises(ValidationError):
        IngestDocument(tenant="acme", document_id="1")
    with pytest.raises(ValidationError):
        IngestDocument(tenant="acme", document_id="1", text="a", data_base64="YQ==")
    with pytest.raises(ValidationError):
        IngestDocument(tenant="acme", document_id="1", op=ChangeOp.DELETE, text="a")
    assert IngestDocument(tenant="acme", document_id="1", op=ChangeOp.DELETE).op is ChangeOp.DELETE


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        IngestDocument.model_validate({"tenant": "acme", "document_id": "1", "text": "a", "tennant": "x"})


def test_a_delete_event_carries_no_blocks() -> None:
    with pytest.raises(ValidationError):
        DocumentChanged(
            event_id="e",
            op=ChangeOp.DELETE,
            tenant="acme",
            document_id="1",
            version=2,
            source=SourceRef(kind=SourceKind.API),
            blocks=[TextBlock(kind="paragraph", text="x")],
        )


def _chunk(chunk_id: str) -> Chunk:
    return Chunk(chunk_id=chunk_id, position=0, text="t", content_hash="h", token_count=1)


def test_embedded_vectors_must_match_chunks_and_dimension() -> None:
    base = {
        "event_id": "e",
        "op": ChangeOp.UPSERT,
        "tenant": "acme",
        "document_id": "1",
        "version": 1,
        "source": SourceRef(kind=SourceKind.API),
        "model": "m",
        "dimension": 2,
        "chunks": [_chunk("a")],
    }
    sparse = SparseVector(indices=[1], values=[1.0])
    ChunksEmbedded(**base, vectors=[ChunkVectors(chunk_id="a", dense=[0.1, 0.2], sparse=sparse)])
    with pytest.raises(ValidationError):
        ChunksEmbedded(**base, vectors=[ChunkVectors(chunk_id="b", dense=[0.1, 0.2], sparse=sparse)])
    with pytest.raises(ValidationError):
        ChunksEmbedded(**base, vectors=[ChunkVectors(chunk_id="a", dense=[0.1], sparse=sparse)])


def test_every_pipeline_topic_is_versioned_and_compacted_and_dead_letters_are_not() -> None:
    assert all(t.name.endswith(".v1") and t.compacted for t in PIPELINE)
    assert not dead_letter_topic("embedder").compacted
    with pytest.raises(ValueError, match="unknown stage"):
        dead_letter_topic("nope")
