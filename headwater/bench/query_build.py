"""The index `headwater bench query` measures: N realistic chunks, built once and cached.

A few hundred SciFact abstracts go through the real chunker and embedding backend. The rest of the chunks
are synthesised from them: runs of real sentences from two or three real chunks, a dense vector that is the
token-weighted mix of theirs plus noise, and a sparse vector encoded from the new text. Documents spread
over tenants of Zipf-distributed sizes, with ACL groups (some public) and metadata, and every point is
written with the payload the indexer writes (`plan_write`). Some documents are then updated or deleted
through `index_event`, so the index also holds soft-deleted chunks and tombstones, as a live one does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from headwater.kernel.model_files import count_tokens
from headwater.kernel.sentences import split_sentences
from schemas import (
    ChangeOp,
    Chunk,
    ChunksCreated,
    ChunksEnriched,
    ChunkVectors,
    DocumentRedacted,
    IngestDocument,
    SourceKind,
    SourceRef,
    VersionKind,
)
from services.chunker.config import ChunkerSettings
from services.chunker.logic import chunk_documents, chunk_id_for, content_hash
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.logic import embed_chunk_sets
from services.embedder.ports import EmbeddingBackend
from services.embedder.sparse import SparseEncoder
from services.indexer.adapters.edge import EdgeIndex
from services.indexer.logic import plan_write
from services.indexer.ports import CollectionSpec, IndexFilter, IndexPoint, point_id
from services.indexer.service import index_event
from services.ingest.logic import normalise

RECIPE = "bench-query/v1"  # part of the cache key: change it whenever the build below changes
ALIAS = "headwater_chunks"
GROUPS = ("eng", "sales", "legal", "hr", "ops", "exec")
JOURNALS = ("Nature", "Cell", "Lancet", "NEJM", "BMJ", "PLoS One", "JAMA", "Science", "eLife", "PNAS")
PUBLIC_SHARE = 0.4  # documents without ACL groups, visible to every caller of the tenant
UPDATED_SHARE = 0.05  # documents re-indexed at version 2 with one chunk rewritten
DELETED_SHARE = 0.01  # extra documents indexed, then deleted
NOW = datetime(2025, 6, 1, tzinfo=UTC)
Echo = Callable[[str], None]


@dataclass(frozen=True)
class BuildSpec:
    """What the index is made of; its hash names the cache directory."""

    chunks: int
    real_documents: int
    tenants: int
    seed: int
    dataset: str
    model_id: str
    dimension: int
    recipe: str = RECIPE

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Visible:
    """What every live chunk looks like to a filter, row by row, for the exact numpy yardstick."""

    ids: list[str] = field(default_factory=list)
    tenant: list[int] = field(default_factory=list)
    acl_mask: list[int] = field(default_factory=list)  # bit i: group GROUPS[i]; 0: public
    year: list[int] = field(default_factory=list)
    dense: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class BuiltIndex:
    """A built (or cached) bench index and the arrays of its live chunks."""

    root: Path
    manifest: dict[str, object]
    ids: np.ndarray
    tenant: np.ndarray
    acl_mask: np.ndarray
    year: np.ndarray
    dense: np.ndarray


def tenant_name(code: int) -> str:
    return f"tenant-{code:02d}"


def cached_index(
    spec: BuildSpec,
    *,
    cache_dir: Path,
    backend: EmbeddingBackend,
    rebuild: bool = False,
    echo: Echo = print,
) -> BuiltIndex:
    """The index of `spec` under `cache_dir/<key>`, built first when missing, incomplete or `rebuild`."""
    root = cache_dir / spec.key()
    manifest_file = root / "manifest.json"
    if rebuild or not manifest_file.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _build(spec, root=root, backend=backend, echo=echo)
    else:
        echo(f"Using the cached index in {root} (--rebuild to build it again).")
    arrays = np.load(root / "visible.npz")
    return BuiltIndex(
        root=root,
        manifest=json.loads(manifest_file.read_text()),
        ids=arrays["ids"],
        tenant=arrays["tenant"],
        acl_mask=arrays["acl_mask"],
        year=arrays["year"],
        dense=arrays["dense"],
    )


@dataclass(frozen=True)
class _Source:
    """A real chunk the synthetic ones borrow from."""

    sentences: list[str]
    sentence_tokens: list[int]
    tokens: int
    dense: np.ndarray
    headings: list[str]
    title: str | None


def _build(spec: BuildSpec, *, root: Path, backend: EmbeddingBackend, echo: Echo) -> None:
    started = time.perf_counter()
    rng = np.random.default_rng(spec.seed)
    sparse = SparseEncoder()
    echo(f"Chunking and embedding {spec.real_documents} SciFact abstracts with {backend.model_id}…")
    real = _real_chunk_sets(Path(spec.dataset), spec.real_documents, backend=backend, sparse=sparse)
    synth = _Synthesiser(
        sources=_sources(real), rng=rng, sparse=sparse, model_id=spec.model_id, tenants=spec.tenants
    )
    index = EdgeIndex(root / "index")
    collection = f"{ALIAS}__bench__d{spec.dimension}"
    index.ensure_collection(CollectionSpec(name=collection, dense_dim=spec.dimension))
    index.switch_alias(ALIAS, collection)
    visible = Visible()
    live: dict[str, int] = {}  # point id -> row in `visible`
    to_update: list[ChunksEnriched] = []
    echo(f"Synthesising and writing {spec.chunks} chunks over {spec.tenants} tenants…")
    documents = 0
    with _Writer(index, collection) as writer:
        for event, dense in synth.documents(real, total=spec.chunks, first_number=0):
            documents += 1
            writer.add(event)
            for vectors, row in zip(event.vectors, dense, strict=True):
                live[_pid(event, vectors.chunk_id)] = _add_row(visible, event, vectors.chunk_id, row)
            if rng.random() < UPDATED_SHARE:
                to_update.append(event)
        doomed = [
            e for e, _ in synth.documents([], total=int(spec.chunks * DELETED_SHARE), first_number=10**8)
        ]
        for event in doomed:
            writer.add(event)
    for event in doomed:
        index_event(event.model_copy(update=_deleted(event)), index=index, collection=collection, now=NOW)
    for old in to_update:
        event, dense_first = synth.updated(old)
        index_event(event, index=index, collection=collection, now=NOW)
        live.pop(_pid(old, old.vectors[0].chunk_id))
        live[_pid(event, event.vectors[0].chunk_id)] = _add_row(
            visible, event, event.vectors[0].chunk_id, dense_first
        )
    rows = sorted(live.values())
    _check_counts(index, collection, visible, rows, spec.tenants)
    index.flush()
    index.close()
    np.savez(
        root / "visible.npz",
        ids=np.array([visible.ids[r] for r in rows]),
        tenant=np.array([visible.tenant[r] for r in rows], dtype=np.int16),
        acl_mask=np.array([visible.acl_mask[r] for r in rows], dtype=np.int32),
        year=np.array([visible.year[r] for r in rows], dtype=np.int32),
        dense=np.stack([visible.dense[r] for r in rows]).astype(np.float32),
    )
    soft_deleted = len(to_update) + sum(len(e.chunks) for e in doomed)
    manifest = {
        "spec": asdict(spec),
        "live_chunks": len(rows),
        "soft_deleted_chunks": soft_deleted,
        "tombstones": len(doomed),
        "documents": documents + len(doomed),
        "updated_documents": len(to_update),
        "deleted_documents": len(doomed),
        "real_chunks": len(synth.sources),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    # Written last: a build interrupted before this line is started over by the next run.
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    echo(f"Built in {manifest['build_seconds']} s: {len(rows)} live chunks, {soft_deleted} soft-deleted.")


class _Writer:
    """Batches the points the indexer would write for documents it has never seen (`plan_write`)."""

    def __init__(self, index: EdgeIndex, collection: str, *, batch: int = 1000) -> None:
        self.index, self.collection, self.size = index, collection, batch
        self.pending: list[IndexPoint] = []

    def add(self, event: ChunksEnriched) -> None:
        self.pending += plan_write(event, [], NOW).upserts
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        self.index.upsert(self.collection, self.pending)
        self.pending = []

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *_: object) -> None:
        self.flush()


def _real_chunk_sets(
    dataset: Path, limit: int, *, backend: EmbeddingBackend, sparse: SparseEncoder
) -> list[ChunksEnriched]:
    """The first `limit` abstracts through the chunker and embedder, as the pipeline would cut them."""
    docs: list[DocumentRedacted] = []
    with (dataset / "corpus.jsonl").open() as lines:
        for line in lines:
            if len(docs) >= limit:
                break
            row = json.loads(line)
            command = IngestDocument(
                tenant="bench",
                document_id=str(row["_id"]),
                version=1,
                title=row.get("title") or None,
                text=row["text"],
                source=SourceRef(kind=SourceKind.FILE, name="scifact"),
            )
            changed = normalise(command, received_at=NOW)
            docs.append(DocumentRedacted(**changed.model_dump(exclude={"kind"})))
    created: list[ChunksCreated] = chunk_documents(
        docs, settings=ChunkerSettings(), count_tokens=count_tokens, encode=backend.embed
    )
    embedded = embed_chunk_sets(
        created, backend=backend, cache=InMemoryEmbeddingCache(max_entries=1_000_000), sparse=sparse
    )
    return [ChunksEnriched(**e.model_dump(exclude={"kind"})) for e in embedded if e.chunks]


def _sources(real: list[ChunksEnriched]) -> list[_Source]:
    chunks = [
        (event, chunk, vectors)
        for event in real
        for chunk, vectors in zip(event.chunks, event.vectors, strict=True)
    ]
    sentences = [[chunk.text[a:b] for a, b in split_sentences(chunk.text)] for _, chunk, _ in chunks]
    counts = iter(count_tokens([s for group in sentences for s in group]))
    return [
        _Source(
            sentences=group,
            sentence_tokens=[next(counts) for _ in group],
            tokens=chunk.token_count,
            dense=np.asarray(vectors.dense, dtype=np.float32),
            headings=list(chunk.headings),
            title=event.title,
        )
        for (event, chunk, vectors), group in zip(chunks, sentences, strict=True)
        if group
    ]


@dataclass
class _Synthesiser:
    """Makes documents of real and synthetic chunks, each in a tenant drawn by Zipf weights."""

    sources: list[_Source]
    rng: np.random.Generator
    sparse: SparseEncoder
    model_id: str
    tenants: int

    def __post_init__(self) -> None:
        weights = 1 / np.arange(1, self.tenants + 1)
        self.tenant_p = weights / weights.sum()
        self.chunk_counts = [1, 2, 2, 3]

    def documents(
        self, real: list[ChunksEnriched], *, total: int, first_number: int
    ) -> Iterator[tuple[ChunksEnriched, list[np.ndarray]]]:
        """Documents holding exactly `total` chunks: the real ones first, then synthetic ones."""
        if real:
            self.chunk_counts = [len(e.chunks) for e in real]
        made = 0
        number = first_number
        while made < total:
            if number - first_number < len(real):
                base = real[number - first_number]
                texts = [c.text for c in base.chunks]
                dense = [np.asarray(v.dense, dtype=np.float32) for v in base.vectors]
                title, headings = base.title, [list(c.headings) for c in base.chunks]
                document_id = f"scifact-{base.document_id}"
            else:
                size = int(self.rng.choice(self.chunk_counts))
                mixed = [self.synthetic_chunk() for _ in range(size)]
                texts, dense = [m[0] for m in mixed], [m[1] for m in mixed]
                title, headings = mixed[0][2].title, [m[2].headings for m in mixed]
                document_id = f"synthetic-{number:09d}"
            texts, dense = texts[: total - made], dense[: total - made]
            made += len(texts)
            number += 1
            tenant = int(self.rng.choice(self.tenants, p=self.tenant_p))
            yield (
                self.event(tenant, document_id, texts=texts, dense=dense, headings=headings, title=title),
                dense,
            )

    def synthetic_chunk(self) -> tuple[str, np.ndarray, _Source]:
        """Runs of real sentences from 2-3 real chunks, as long as a real chunk; the dense vector is their
        token-weighted mix plus noise, so neighbours in vector space stay neighbours in meaning."""
        rng, sources = self.rng, self.sources
        picked = [
            sources[int(i)] for i in rng.choice(len(sources), size=int(rng.integers(2, 4)), replace=False)
        ]
        share = max(1, sources[int(rng.integers(len(sources)))].tokens // len(picked))
        parts: list[str] = []
        mix = np.zeros_like(picked[0].dense)
        used = 0
        for source in picked:
            start = int(rng.integers(len(source.sentences)))
            taken = 0
            for sentence, tokens in zip(
                source.sentences[start:], source.sentence_tokens[start:], strict=True
            ):
                if taken >= share:
                    break
                parts.append(sentence)
                taken += tokens
            mix += taken * source.dense
            used += taken
        mix /= max(used, 1)
        scale = 0.15 * float(np.linalg.norm(mix)) / mix.size**0.5
        vector = mix + rng.standard_normal(mix.shape).astype(np.float32) * scale
        return " ".join(parts), vector / np.linalg.norm(vector), picked[0]

    def event(
        self,
        tenant: int,
        document_id: str,
        *,
        texts: list[str],
        dense: list[np.ndarray],
        headings: list[list[str]],
        title: str | None,
    ) -> ChunksEnriched:
        """A version-1 upsert with random ACL groups (some public) and metadata."""
        rng, name = self.rng, tenant_name(tenant)
        acl: list[str] = []
        if rng.random() >= PUBLIC_SHARE:
            acl = sorted(str(g) for g in rng.choice(GROUPS, size=int(rng.integers(1, 3)), replace=False))
        chunks = [self._chunk(name, document_id, i, text, headings[i]) for i, text in enumerate(texts)]
        return ChunksEnriched(
            event_id=f"{name}/{document_id}/1",
            op=ChangeOp.UPSERT,
            tenant=name,
            document_id=document_id,
            version=1,
            version_kind=VersionKind.SEQUENCE,
            source=SourceRef(kind=SourceKind.API, name="bench"),
            occurred_at=NOW,
            title=title,
            metadata={
                "year": int(rng.integers(1990, 2025)),
                "journal": str(rng.choice(JOURNALS)),
                "peer_reviewed": bool(rng.random() < 0.8),
            },
            acl=acl,
            chunks=chunks,
            model=self.model_id,
            dimension=len(dense[0]),
            vectors=[
                ChunkVectors(
                    chunk_id=c.chunk_id, dense=d.tolist(), sparse=self.sparse.encode_document(c.text)
                )
                for c, d in zip(chunks, dense, strict=True)
            ],
        )

    def updated(self, event: ChunksEnriched) -> tuple[ChunksEnriched, np.ndarray]:
        """Version 2 of a document with its first chunk rewritten (its old point becomes soft-deleted)."""
        text, dense, _ = self.synthetic_chunk()
        first = self._chunk(event.tenant, event.document_id, 0, text, list(event.chunks[0].headings))
        vectors = ChunkVectors(
            chunk_id=first.chunk_id, dense=dense.tolist(), sparse=self.sparse.encode_document(text)
        )
        v2 = event.model_copy(
            update={
                "event_id": f"{event.tenant}/{event.document_id}/2",
                "version": 2,
                "chunks": [first, *event.chunks[1:]],
                "vectors": [vectors, *event.vectors[1:]],
            }
        )
        return v2, dense

    @staticmethod
    def _chunk(tenant: str, document_id: str, position: int, text: str, headings: list[str]) -> Chunk:
        digest = content_hash(text)
        return Chunk(
            chunk_id=chunk_id_for(
                tenant=tenant, document_id=document_id, position=position, content_hash=digest
            ),
            position=position,
            text=text,
            content_hash=digest,
            token_count=len(text.split()),
            headings=headings,
        )


def _deleted(event: ChunksEnriched) -> dict[str, object]:
    return {
        "event_id": f"{event.tenant}/{event.document_id}/delete",
        "op": ChangeOp.DELETE,
        "version": 2,
        "chunks": [],
        "vectors": [],
    }


def _pid(event: ChunksEnriched, chunk_id: str) -> str:
    return point_id(tenant=event.tenant, document_id=event.document_id, chunk_id=chunk_id)


def _add_row(visible: Visible, event: ChunksEnriched, chunk_id: str, dense: np.ndarray) -> int:
    visible.ids.append(_pid(event, chunk_id))
    visible.tenant.append(int(event.tenant.rsplit("-", 1)[1]))
    visible.acl_mask.append(sum(1 << GROUPS.index(g) for g in event.acl))
    year = event.metadata["year"]
    assert isinstance(year, int)
    visible.year.append(year)
    visible.dense.append(dense)
    return len(visible.ids) - 1


def _check_counts(index: EdgeIndex, collection: str, visible: Visible, rows: list[int], tenants: int) -> None:
    """The yardstick must see exactly the live chunks the index holds, tenant by tenant."""
    for code in range(tenants):
        expected = sum(1 for r in rows if visible.tenant[r] == code)
        found = index.count(collection, IndexFilter(tenant=tenant_name(code)))
        if found != expected:
            raise RuntimeError(
                f"{tenant_name(code)}: the index holds {found} live chunks, expected {expected}"
            )
