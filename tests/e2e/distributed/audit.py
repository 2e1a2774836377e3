"""Index contents against the source of truth, the way the reliability test plan counts them:
lost (expected live, absent), dup_visible (one logical chunk live twice, or two versions live at once),
stale (live content older than the source's latest version), resurrected (deleted, yet live)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.indexer.adapters.edge import EdgeIndex
from services.indexer.ports import LIVE, IndexFilter

DocKey = tuple[str, str]  # (tenant, document_id)


@dataclass(frozen=True)
class Latest:
    version: int
    deleted: bool


@dataclass
class Audit:
    documents: int = 0
    live_points: int = 0
    lost: list[DocKey] = field(default_factory=list)
    dup_visible: list[DocKey] = field(default_factory=list)
    stale: list[DocKey] = field(default_factory=list)
    resurrected: list[DocKey] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"documents={self.documents} live_points={self.live_points} lost={len(self.lost)} "
            f"dup_visible={len(self.dup_visible)} stale={len(self.stale)} resurrected={len(self.resurrected)}"
        )

    @property
    def clean(self) -> bool:
        return not (self.lost or self.dup_visible or self.stale or self.resurrected)


def snapshot(index_dir: Path, alias: str, tenants: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every point (live or soft-deleted) with its payload; open only while no index node runs."""
    index = EdgeIndex(index_dir)
    try:
        collection = index.resolve_alias(alias)
        if collection is None:
            return {}
        points: dict[str, dict[str, Any]] = {}
        for tenant in tenants:
            hits = index.scroll(
                collection, filter=IndexFilter(tenant=tenant, include_deleted=True), limit=1_000_000
            )
            points.update({h.id: dict(h.payload) for h in hits})
        return points
    finally:
        index.close()


def audit(points: Mapping[str, Mapping[str, Any]], truth: Mapping[DocKey, Latest]) -> Audit:
    live: dict[DocKey, list[Mapping[str, Any]]] = defaultdict(list)
    for payload in points.values():
        if payload.get("state") == LIVE:
            live[(str(payload["tenant"]), str(payload["document_id"]))].append(payload)
    result = Audit(documents=len(truth), live_points=sum(len(v) for v in live.values()))
    for key, latest in truth.items():
        chunks = live.get(key, [])
        if latest.deleted:
            if chunks:
                result.resurrected.append(key)
            continue
        if not chunks:
            result.lost.append(key)
            continue
        versions = {int(c["doc_version"]) for c in chunks}
        positions = [int(c["position"]) for c in chunks]
        if len(versions) > 1 or len(positions) != len(set(positions)):
            result.dup_visible.append(key)
        if min(versions) < latest.version:
            result.stale.append(key)
    return result
