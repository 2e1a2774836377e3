"""The embedding stage: dedupe chunks by content hash, reuse cached vectors, embed the rest in batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from schemas import ChangeOp, Chunk, ChunksCreated, ChunksEmbedded, ChunkVectors, SparseVector
from services.embedder.errors import CacheUnavailableError, PermanentEmbeddingError
from services.embedder.ports import EmbeddingBackend, EmbeddingCache, Vector
from services.embedder.sparse import SparseEncoder

logger = logging.getLogger(__name__)

_SPECIAL_TOKENS = 2  # [CLS] and [SEP]: chunk token counts exclude them, the model does not


def plan_batches(
    token_counts: Sequence[int], *, max_batch_tokens: int, max_batch_size: int
) -> list[list[int]]:
    """Split indices, in order, into batches of at most `max_batch_size` items and `max_batch_tokens`."""
    if max_batch_tokens <= 0 or max_batch_size <= 0:
        raise ValueError("batch limits must be positive")
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, count in enumerate(token_counts):
        if current and (len(current) >= max_batch_size or used + count > max_batch_tokens):
            batches.append(current)
            current, used = [], 0
        # An item over the whole budget still goes alone: the backend truncates it, refusing would lose it.
        current.append(i)
        used += count
    if current:
        batches.append(current)
    return batches


def embed_chunk_sets(
    sets: Sequence[ChunksCreated],
    *,
    backend: EmbeddingBackend,
    cache: EmbeddingCache,
    sparse: SparseEncoder,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[ChunksEmbedded]:
    """Embed every chunk of `sets` (one output per input, same order); deletes pass through without vectors.

    The cache is best effort: if it is unavailable, everything is embedded and the outcome is the same.
    """
    first, owner = _first_by_hash(sets)
    dense = embed_chunks(
        first,
        backend=backend,
        cache=cache,
        max_batch_tokens=max_batch_tokens,
        max_batch_size=max_batch_size,
        describe=lambda h: _describe(h, first=first, owner=owner),
    )
    sparse_by_hash: dict[str, SparseVector] = {h: sparse.encode_document(c.text) for h, c in first.items()}
    model_id, dimension = backend.model_id, backend.dimension
    return [
        _embedded(s, dense=dense, sparse=sparse_by_hash, model_id=model_id, dimension=dimension) for s in sets
    ]


def embed_chunks(
    chunks: Mapping[str, Chunk],
    *,
    backend: EmbeddingBackend,
    cache: EmbeddingCache,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
    describe: Callable[[str], str] | None = None,
) -> dict[str, Vector]:
    """Dense vectors of `chunks` (by content hash): cached ones, the rest embedded in batches within the
    token and size budgets, each batch checked and cached as it comes."""
    model_id, dimension = backend.model_id, backend.dimension
    dense = _cached(cache, model_id, list(chunks), dimension=dimension)
    misses = [h for h in chunks if h not in dense]
    limit = backend.max_input_tokens
    counts = [min(chunks[h].token_count + _SPECIAL_TOKENS, limit) for h in misses]
    for batch in plan_batches(counts, max_batch_tokens=max_batch_tokens, max_batch_size=max_batch_size):
        hashes = [misses[i] for i in batch]
        rows = backend.embed([chunks[h].text for h in hashes])
        fresh = _checked(
            rows, hashes, describe=describe or _hash_only, dimension=dimension, model_id=model_id
        )
        dense.update(fresh)
        _store(cache, model_id, fresh)  # per batch, so a later failure does not waste the work done
    return dense


def _first_by_hash(sets: Sequence[ChunksCreated]) -> tuple[dict[str, Chunk], dict[str, ChunksCreated]]:
    """Content hash -> the first chunk carrying it (its text, for error messages) and its chunk set."""
    first: dict[str, Chunk] = {}
    owner: dict[str, ChunksCreated] = {}
    for chunk_set in sets:
        for chunk in chunk_set.chunks:
            if chunk.content_hash not in first:
                first[chunk.content_hash] = chunk
                owner[chunk.content_hash] = chunk_set
    return first, owner


def _embedded(
    chunk_set: ChunksCreated,
    *,
    dense: dict[str, Vector],
    sparse: dict[str, SparseVector],
    model_id: str,
    dimension: int,
) -> ChunksEmbedded:
    body = chunk_set.model_dump(exclude={"kind"})
    vectors = []
    if chunk_set.op is ChangeOp.UPSERT:
        vectors = [
            ChunkVectors(
                chunk_id=c.chunk_id, dense=dense[c.content_hash].tolist(), sparse=sparse[c.content_hash]
            )
            for c in chunk_set.chunks
        ]
    return ChunksEmbedded.model_validate(
        {**body, "model": model_id, "dimension": dimension, "vectors": vectors}
    )


def _checked(
    rows: np.ndarray,
    hashes: list[str],
    *,
    describe: Callable[[str], str],
    dimension: int,
    model_id: str,
) -> dict[str, Vector]:
    """Refuse a batch with a wrong shape or a non-finite value: such a vector would poison the index."""
    if rows.ndim != 2 or rows.shape[0] != len(hashes):
        raise PermanentEmbeddingError(f"{model_id} returned shape {rows.shape} for {len(hashes)} texts")
    if rows.shape[1] != dimension:
        where = describe(hashes[0])
        raise PermanentEmbeddingError(
            f"{model_id} returned dimension {rows.shape[1]}, not {dimension}, for {where}"
        )
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        where = describe(hashes[int(bad[0])])
        raise PermanentEmbeddingError(f"{model_id} returned a NaN or infinite vector for {where}")
    return {h: np.asarray(rows[i], dtype=np.float32) for i, h in enumerate(hashes)}


def _hash_only(content_hash: str) -> str:
    return f"the text with hash {content_hash[:12]}"


def _describe(content_hash: str, *, first: dict[str, Chunk], owner: dict[str, ChunksCreated]) -> str:
    chunk, chunk_set = first[content_hash], owner[content_hash]
    return f"chunk {chunk.chunk_id} of {chunk_set.tenant}/{chunk_set.document_id}"


def _cached(cache: EmbeddingCache, model_id: str, hashes: list[str], *, dimension: int) -> dict[str, Vector]:
    if not hashes:
        return {}
    try:
        found = cache.get_many(model_id, hashes)
    except CacheUnavailableError:
        logger.warning(
            "embedding cache unavailable for reads; embedding %d texts", len(hashes), exc_info=True
        )
        return {}
    # A stored vector of the wrong size or with NaN is treated as a miss and recomputed, never trusted.
    return {h: v for h, v in found.items() if v.shape == (dimension,) and bool(np.isfinite(v).all())}


def _store(cache: EmbeddingCache, model_id: str, items: dict[str, Vector]) -> None:
    try:
        cache.put_many(model_id, items)
    except CacheUnavailableError:
        logger.warning(
            "embedding cache unavailable for writes; %d vectors not stored", len(items), exc_info=True
        )
