"""Semantic, heading-aware chunking of redacted documents. Pure: token counting and sentence
embedding are injected, so the logic runs in tests without a model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from headwater.kernel.sentences import split_sentences
from schemas import BlockKind, ChangeOp, Chunk, ChunkMention, ChunksCreated, DocumentRedacted
from services.chunker.config import ChunkerSettings

CountTokens = Callable[[list[str]], list[int]]
EncodeSentences = Callable[[list[str]], np.ndarray]  # rows L2-normalised

_SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two of the model's positions
_HEADING_SEPARATOR = " › "
_STRUCTURAL = (BlockKind.TABLE, BlockKind.CODE)


@dataclass(frozen=True)
class Unit:
    """The smallest piece a chunk boundary may fall between: a sentence, a heading or a table row."""

    text: str
    block: int
    start: int  # character offset inside the block's text
    tokens: int = 0
    line: bool = False  # a whole line of a table or code block: rendered on a line of its own


@dataclass
class Section:
    headings: tuple[str, ...]
    units: list[Unit] = field(default_factory=list)


def chunk_id_for(*, tenant: str, document_id: str, position: int, content_hash: str) -> str:
    """Deterministic chunk id: the same text at the same place of the same document keeps its id."""
    return hashlib.sha256(f"{tenant}\x1f{document_id}\x1f{position}\x1f{content_hash}".encode()).hexdigest()[
        :32
    ]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_sections(doc: DocumentRedacted) -> list[Section]:
    """Group blocks under their heading path; a heading opens a section and is its first unit."""
    sections: list[Section] = [Section(headings=())]
    stack: list[tuple[int, str]] = []  # (level, heading text); the title sits at level 0
    for index, block in enumerate(doc.blocks):
        if block.kind in (BlockKind.TITLE, BlockKind.HEADING):
            level = 0 if block.kind is BlockKind.TITLE else block.level
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, block.text))
            sections.append(Section(headings=tuple(text for _, text in stack)))
            sections[-1].units.append(Unit(text=block.text, block=index, start=0))
            continue
        if block.kind in _STRUCTURAL:
            offset = 0
            for line in block.text.split("\n"):
                if line.strip():
                    sections[-1].units.append(Unit(text=line, block=index, start=offset, line=True))
                offset += len(line) + 1
        else:
            for start, end in split_sentences(block.text):
                sections[-1].units.append(Unit(text=block.text[start:end], block=index, start=start))
    return [s for s in sections if s.units]


def _with_tokens(sections: list[Section], count_tokens: CountTokens, budget: int) -> list[Section]:
    texts = [u.text for s in sections for u in s.units]
    counts = iter(count_tokens(texts)) if texts else iter(())
    out = []
    for section in sections:
        units: list[Unit] = []
        for unit in section.units:
            units.extend(_fit(replace(unit, tokens=next(counts)), count_tokens, budget))
        out.append(Section(section.headings, units))
    return out


def _fit(unit: Unit, count_tokens: CountTokens, budget: int) -> list[Unit]:
    """Cut a unit longer than the budget at word boundaries (a run-on sentence or a huge table row)."""
    if unit.tokens <= budget:
        return [unit]
    words = unit.text.split(" ")
    pieces: list[Unit] = []
    start_word, offset = 0, 0
    while start_word < len(words):
        # Word pieces per word vary; grow greedily and let the tokenizer decide.
        end_word = min(len(words), start_word + max(1, budget // 2))
        while (
            end_word < len(words) and count_tokens([" ".join(words[start_word : end_word + 1])])[0] <= budget
        ):
            end_word += 1
        text = " ".join(words[start_word:end_word])
        # Only the first piece of a cut table row starts a line; the rest continue it.
        line = unit.line and not pieces
        pieces.append(Unit(text, unit.block, unit.start + offset, count_tokens([text])[0], line))
        offset += len(text) + 1
        start_word = end_word
    return pieces


class _Similarity:
    """Neighbour similarity, computed lazily: only the sentences beside a candidate cut are embedded,
    so a section a little over the budget costs a handful of sentence embeddings, not all of them."""

    def __init__(self, units: list[Unit], encode: EncodeSentences) -> None:
        self.units = units
        self._encode = encode
        self._vectors: dict[int, np.ndarray] = {}

    def missing(self, cuts: Sequence[int]) -> list[int]:
        return sorted({i for c in cuts for i in (c - 1, c)} - self._vectors.keys())

    def fill(self, indices: Sequence[int], vectors: np.ndarray) -> None:
        self._vectors.update(zip(indices, vectors, strict=True))

    def at(self, cuts: list[int]) -> dict[int, float]:
        """Cosine between the sentences either side of each cut (cut c lies between c-1 and c)."""
        missing = self.missing(cuts)
        if missing:
            self.fill(missing, self._encode([self.units[i].text for i in missing]))
        return {c: float(np.dot(self._vectors[c - 1], self._vectors[c])) for c in cuts}


def _candidate_cuts(
    tokens: list[int], start: int, end: int, *, budget: int, min_tokens: int
) -> tuple[list[int], dict[int, int]]:
    """The cuts worth comparing: one that finishes the job if any, else one leaving a final left side;
    balanced ones (both sides ≥ min) first. Returns them with each cut's left-side token count."""
    total = sum(tokens[start:end])
    left_of: dict[int, int] = {}
    running = 0
    for c in range(start + 1, end):
        running += tokens[c - 1]
        left_of[c] = running
    cuts = list(left_of)
    pool = [c for c in cuts if left_of[c] <= budget and total - left_of[c] <= budget]
    pool = pool or [c for c in cuts if left_of[c] <= budget] or cuts
    balanced = [c for c in pool if left_of[c] >= min_tokens and total - left_of[c] >= min_tokens]
    return balanced or pool, left_of


def _split_points(
    tokens: list[int], start: int, end: int, *, budget: int, min_tokens: int, similarity: _Similarity | None
) -> list[int]:
    """Cuts that bring units[start:end] within the budget, each at the lowest neighbour similarity
    among the candidate cuts."""
    if sum(tokens[start:end]) <= budget or end - start < 2:
        return []
    pool, left_of = _candidate_cuts(tokens, start, end, budget=budget, min_tokens=min_tokens)
    if similarity is not None:
        scores = similarity.at(pool)
        cut = min(pool, key=lambda c: (scores[c], -left_of[c]))
    else:
        cut = max(pool, key=lambda c: left_of[c])  # no embeddings: fill the left side
    left = _split_points(tokens, start, cut, budget=budget, min_tokens=min_tokens, similarity=similarity)
    right = _split_points(tokens, cut, end, budget=budget, min_tokens=min_tokens, similarity=similarity)
    return [*left, cut, *right]


def _needs_split(tokens: list[int], settings: ChunkerSettings, budget: int) -> bool:
    return len(tokens) > 1 and (sum(tokens) > budget or settings.split_similarity is not None)


def _pieces(
    section: Section, settings: ChunkerSettings, budget: int, similarity: _Similarity | None
) -> list[list[Unit]]:
    units = section.units
    tokens = [u.tokens for u in units]
    if sum(tokens) <= budget and (settings.split_similarity is None or similarity is None):
        return [units]
    # Pieces leave room for the overlap that the next piece will carry over.
    cuts = _split_points(
        tokens,
        0,
        len(units),
        budget=budget - settings.overlap_tokens,
        min_tokens=settings.min_tokens,
        similarity=similarity,
    )
    if similarity is not None and settings.split_similarity is not None:
        cuts = _add_topic_cuts(
            cuts, tokens, similarity, threshold=settings.split_similarity, min_tokens=settings.min_tokens
        )
    bounds = [0, *cuts, len(units)]
    return [units[a:b] for a, b in pairwise(bounds) if b > a]


def _add_topic_cuts(
    cuts: list[int], tokens: list[int], similarity: _Similarity, *, threshold: float, min_tokens: int
) -> list[int]:
    """Also cut where neighbours are less similar than `threshold`, if both new pieces stay ≥ min."""
    scores = similarity.at(list(range(1, len(tokens))))
    out = sorted(cuts)
    for cut, score in sorted(scores.items()):
        if score >= threshold or cut in out:
            continue
        before = max([c for c in out if c < cut], default=0)
        after = min([c for c in out if c > cut], default=len(tokens))
        if sum(tokens[before:cut]) >= min_tokens and sum(tokens[cut:after]) >= min_tokens:
            out = sorted([*out, cut])
    return out


@dataclass
class _Piece:
    headings: tuple[str, ...]
    units: list[Unit]
    opens_section: bool  # starts with its section's heading, so no heading prefix is needed

    @property
    def tokens(self) -> int:
        return sum(u.tokens for u in self.units)


def _merge_small(pieces: list[_Piece], min_tokens: int, budget: int) -> list[_Piece]:
    """Fold a piece under `min_tokens` into its successor (or predecessor) when both fit one chunk."""
    merged: list[_Piece] = []
    for piece in pieces:
        if merged and (merged[-1].tokens < min_tokens or piece.tokens < min_tokens):
            previous = merged[-1]
            if previous.tokens + piece.tokens <= budget:
                # A parent heading folded into its first child section takes the child's path.
                if piece.headings[: len(previous.headings)] == previous.headings:
                    headings = piece.headings
                else:
                    headings = _common_prefix(previous.headings, piece.headings)
                merged[-1] = _Piece(headings, previous.units + piece.units, previous.opens_section)
                continue
        merged.append(piece)
    return merged


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        out.append(x)
    return tuple(out)


def _with_overlap(pieces: list[_Piece], overlap_tokens: int, budget: int) -> list[_Piece]:
    """Repeat the last sentences of a piece at the start of the next one inside the same section."""
    if overlap_tokens <= 0:
        return pieces
    out = [pieces[0]] if pieces else []
    for previous, piece in pairwise(pieces):
        carried: list[Unit] = []
        if not piece.opens_section and previous.headings == piece.headings:
            room = min(overlap_tokens, budget - piece.tokens)
            for unit in reversed(previous.units):
                if unit.tokens > room:
                    break
                carried.insert(0, unit)
                room -= unit.tokens
        out.append(_Piece(piece.headings, carried + piece.units, piece.opens_section))
    return out


def _render(piece: _Piece) -> tuple[str, list[tuple[Unit, int]]]:
    """Chunk text and where each unit starts in it. Sentences of one block are joined by spaces; blocks,
    table rows and code lines each start a line."""
    parts: list[str] = []
    offsets: list[tuple[Unit, int]] = []
    length = 0
    if not piece.opens_section and piece.headings:
        prefix = _HEADING_SEPARATOR.join(piece.headings)
        parts.append(prefix)
        length = len(prefix)
    previous_block: int | None = None
    for unit in piece.units:
        if parts:
            separator = " " if unit.block == previous_block and not unit.line else "\n"
            parts.append(separator)
            length += len(separator)
        offsets.append((unit, length))
        parts.append(unit.text)
        length += len(unit.text)
        previous_block = unit.block
    return "".join(parts), offsets


def _mentions_for(doc: DocumentRedacted, offsets: list[tuple[Unit, int]]) -> list[ChunkMention] | None:
    if doc.mentions is None:
        return None
    found = []
    for mention in doc.mentions:
        for unit, at in offsets:
            if (
                mention.block == unit.block
                and unit.start <= mention.start
                and mention.end <= unit.start + len(unit.text)
            ):
                start = at + mention.start - unit.start
                found.append(
                    ChunkMention(
                        label=mention.label, text=mention.text, start=start, end=start + len(mention.text)
                    )
                )
                break
    return found


@dataclass
class _Plan:
    doc: DocumentRedacted
    sections: list[Section]
    similarities: dict[int, _Similarity]  # section index -> its lazy similarity


def _plan(
    doc: DocumentRedacted,
    settings: ChunkerSettings,
    count_tokens: CountTokens,
    encode: EncodeSentences | None,
) -> _Plan:
    budget = settings.max_tokens - _SPECIAL_TOKENS
    sections = _with_tokens(build_sections(doc), count_tokens, budget) if doc.op is ChangeOp.UPSERT else []
    similarities = {}
    if encode is not None:
        for i, section in enumerate(sections):
            if _needs_split([u.tokens for u in section.units], settings, budget):
                similarities[i] = _Similarity(section.units, encode)
    return _Plan(doc, sections, similarities)


def _prefetch(plans: list[_Plan], settings: ChunkerSettings, encode: EncodeSentences) -> None:
    """Embed, in one call for the whole batch, the sentences every first cut decision will compare;
    small per-document calls would spend most of their time on per-call overhead."""
    budget = settings.max_tokens - _SPECIAL_TOKENS - settings.overlap_tokens
    wanted: list[tuple[_Similarity, list[int]]] = []
    for plan in plans:
        for similarity in plan.similarities.values():
            tokens = [u.tokens for u in similarity.units]
            if settings.split_similarity is not None:
                cuts = list(range(1, len(tokens)))
            else:
                cuts, _ = _candidate_cuts(
                    tokens, 0, len(tokens), budget=budget, min_tokens=settings.min_tokens
                )
            wanted.append((similarity, similarity.missing(cuts)))
    texts = [similarity.units[i].text for similarity, indices in wanted for i in indices]
    if not texts:
        return
    vectors = encode(texts)
    offset = 0
    for similarity, indices in wanted:
        similarity.fill(indices, vectors[offset : offset + len(indices)])
        offset += len(indices)


def _finish(plan: _Plan, settings: ChunkerSettings, count_tokens: CountTokens) -> ChunksCreated:
    doc = plan.doc
    header = doc.model_dump(exclude={"kind", "blocks", "mentions"})
    if doc.op is ChangeOp.DELETE:
        return ChunksCreated(**header)
    budget = settings.max_tokens - _SPECIAL_TOKENS
    pieces: list[_Piece] = []
    for index, section in enumerate(plan.sections):
        heading_unit = section.headings and section.units[0].text == section.headings[-1]
        for i, units in enumerate(_pieces(section, settings, budget, plan.similarities.get(index))):
            opens = bool(i == 0 and (heading_unit or not section.headings))
            pieces.append(_Piece(section.headings, units, opens_section=opens))
    pieces = _with_overlap(_merge_small(pieces, settings.min_tokens, budget), settings.overlap_tokens, budget)
    texts_and_offsets = [_render(piece) for piece in pieces]
    token_counts = count_tokens([text for text, _ in texts_and_offsets]) if texts_and_offsets else []
    chunks = []
    for position, ((text, offsets), piece, tokens) in enumerate(
        zip(texts_and_offsets, pieces, token_counts, strict=True)
    ):
        digest = content_hash(text)
        chunks.append(
            Chunk(
                chunk_id=chunk_id_for(
                    tenant=doc.tenant, document_id=doc.document_id, position=position, content_hash=digest
                ),
                position=position,
                text=text,
                content_hash=digest,
                token_count=tokens,
                headings=list(piece.headings),
                mentions=_mentions_for(doc, offsets),
            )
        )
    return ChunksCreated(**header, chunks=chunks)


def chunk_documents(
    docs: Sequence[DocumentRedacted],
    *,
    settings: ChunkerSettings,
    count_tokens: CountTokens,
    encode: EncodeSentences | None = None,
) -> list[ChunksCreated]:
    """Cut redacted documents into chunks; a delete yields a chunk set with no chunks."""
    plans = [_plan(doc, settings, count_tokens, encode) for doc in docs]
    if encode is not None:
        _prefetch(plans, settings, encode)
    return [_finish(plan, settings, count_tokens) for plan in plans]


def chunk_document(
    doc: DocumentRedacted,
    *,
    settings: ChunkerSettings,
    count_tokens: CountTokens,
    encode: EncodeSentences | None = None,
) -> ChunksCreated:
    """One document: `chunk_documents` of a batch of one."""
    (chunks,) = chunk_documents([doc], settings=settings, count_tokens=count_tokens, encode=encode)
    return chunks
