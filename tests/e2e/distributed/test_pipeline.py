"""A document posted to intake becomes searchable; an update replaces it; a delete removes it."""

from __future__ import annotations

from collections.abc import Callable

from headwater.stack.pipeline import LocalPipeline
from tests.e2e.distributed.conftest import post_document, search, wait_for


def test_upsert_update_delete_flow_through_every_service(make_pipeline: Callable[..., LocalPipeline]) -> None:
    pipeline = make_pipeline()
    pipeline.start_all()

    accepted = post_document(
        pipeline,
        {
            "tenant": "acme",
            "document_id": "memo",
            "version": 1,
            "title": "Memo",
            "text": "The heron nests by the weir.",
        },
    )
    assert accepted.status_code == 202, accepted.text

    def texts() -> list[str]:
        return [h["text"] for h in search(pipeline, "acme", "heron nests weir") if h["document_id"] == "memo"]

    wait_for(lambda: any("heron" in t for t in texts()), what="version 1 to be searchable")

    updated = post_document(
        pipeline,
        {"tenant": "acme", "document_id": "memo", "version": 2, "text": "The kingfisher dives at the weir."},
    )
    assert updated.status_code == 202
    wait_for(lambda: texts() != [] and all("kingfisher" in t for t in texts()), what="version 2 to replace 1")

    deleted = post_document(pipeline, {"tenant": "acme", "document_id": "memo", "version": 3, "op": "delete"})
    assert deleted.status_code == 202
    wait_for(lambda: texts() == [], what="the delete to remove the document from results")
    assert search(pipeline, "globex", "kingfisher weir") == []  # and it never was another tenant's
    assert all(pipeline.alive().values()), pipeline.alive()
