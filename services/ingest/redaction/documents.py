"""Redaction of document change events: every block and the title of a batch in one pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from schemas.common import ChangeOp
from schemas.documents import DocumentChanged, DocumentRedacted, EntityMention, TextBlock
from services.ingest.redaction.redactor import Redactor


def redact_documents(events: Sequence[DocumentChanged], *, redactor: Redactor) -> list[DocumentRedacted]:
    """Redact the title and blocks of each upsert (one batch per tenant); deletes pass through."""
    texts_by_tenant: dict[str, list[str]] = {}
    for event in events:
        if event.op is ChangeOp.UPSERT:
            texts = texts_by_tenant.setdefault(event.tenant, [])
            texts += [event.title or "", *(block.text for block in event.blocks)]
    redacted_by_tenant = {
        tenant: iter(redactor.redact_batch(texts, tenant=tenant)) for tenant, texts in texts_by_tenant.items()
    }
    results = []
    for event in events:
        header = event.model_dump(exclude={"kind", "title", "blocks"})
        if event.op is not ChangeOp.UPSERT:
            results.append(DocumentRedacted(**header, title=event.title, blocks=[]))
            continue
        redacted = redacted_by_tenant[event.tenant]
        title = next(redacted)
        counts: Counter[str] = Counter(title.counts)
        blocks: list[TextBlock] = []
        mentions: list[EntityMention] = []
        for index, block in enumerate(event.blocks):
            result = next(redacted)
            counts.update(result.counts)
            blocks.append(block.model_copy(update={"text": result.text}))
            # Title mentions are dropped: a mention is located by block, and the title is not one.
            mentions += [
                EntityMention(block=index, start=m.start, end=m.end, label=m.label, text=m.text)
                for m in result.mentions
            ]
        results.append(
            DocumentRedacted(
                **header,
                title=title.text if event.title is not None else None,
                blocks=blocks,
                pii_counts=dict(counts),
                mentions=mentions,
            )
        )
    return results
