"""Pure extraction: mentions of a chunk set → canonical entities, chunk support and weighted relations."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise

from schemas import ChangeOp, Chunk, ChunkEntities, ChunkMention, ChunksEmbedded, ChunksEnriched
from services.graph_builder import canonical
from services.graph_builder.domain import CO_CHUNK, CO_SENTENCE, DocumentGraph, Entity, Relation, Support
from services.graph_builder.sentences import split_sentences, typed_relation


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOptions:
    chunk_cooccurrence_weight: float = 0.25
    max_entities_per_unit: int = 40  # bounds the pairs of a sentence or chunk (a table can list hundreds)
    typed_relations: bool = True
    relation_max_gap_chars: int = 80


@dataclass(frozen=True, slots=True)
class _Located:
    chunk_id: str
    start: int
    end: int
    group: str
    surface: str


def extract(
    event: ChunksEmbedded,
    mentions_by_chunk: Mapping[str, Sequence[ChunkMention]],
    *,
    options: ExtractOptions | None = None,
) -> DocumentGraph:
    """The graph one document version contributes; a delete contributes nothing."""
    opts = options or ExtractOptions()
    if event.op is ChangeOp.DELETE or not event.chunks:
        return DocumentGraph()
    located = {c.chunk_id: _locate(c, mentions_by_chunk.get(c.chunk_id, ())) for c in event.chunks}
    ids = _resolve_ids([m for ms in located.values() for m in ms])

    names: defaultdict[str, Counter[str]] = defaultdict(Counter)
    support: Counter[tuple[str, str]] = Counter()
    for ms in located.values():
        for m in filter(ids.__contains__, ms):
            names[ids[m]][canonical.display_name(m.surface)] += 1
            support[(ids[m], m.chunk_id)] += 1
    entities = tuple(_entity(eid, surfaces) for eid, surfaces in sorted(names.items()))
    return DocumentGraph(
        entities=entities,
        support=tuple(Support(entity_id=e, chunk_id=c, mentions=n) for (e, c), n in sorted(support.items())),
        relations=_relations(event.chunks, located, ids, opts),
    )


def enrich(event: ChunksEmbedded, graph: DocumentGraph) -> ChunksEnriched:
    """The event with, for each chunk, the entities it mentions (most mentioned first)."""
    by_chunk = graph.entities_by_chunk()
    fields = {name: getattr(event, name) for name in ChunksEmbedded.model_fields if name != "kind"}
    entities = [
        ChunkEntities(chunk_id=c.chunk_id, entity_ids=by_chunk.get(c.chunk_id, [])) for c in event.chunks
    ]
    return ChunksEnriched(**fields, entities=entities)


def _locate(chunk: Chunk, mentions: Sequence[ChunkMention]) -> list[_Located]:
    """Mentions with a usable group and position, pseudonyms added, overlaps resolved to the longest."""
    text = chunk.text
    placed: list[_Located] = []
    for m in canonical.with_placeholders(text, mentions):
        group = canonical.group_of(m)
        if group is None or not m.text.strip():
            continue
        start = m.start if text[m.start : m.end] == m.text else text.find(m.text)
        if start < 0:
            continue  # offsets and text disagree and the text is nowhere in the chunk: unusable
        placed.append(_Located(chunk.chunk_id, start, start + len(m.text), group, m.text))
    kept: list[_Located] = []
    for p in sorted(placed, key=lambda p: (p.start, p.start - p.end)):
        if not kept or p.start >= kept[-1].end:
            kept.append(p)
    return kept


def _resolve_ids(mentions: Sequence[_Located]) -> dict[_Located, str]:
    """Entity id of each mention; a name labelled differently across the document takes its majority group."""
    votes: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for m in mentions:
        if m.group != "person":  # persons are pseudonyms or people: never merged into a place or an org
            votes[canonical.slugify(m.surface, group="")][m.group] += 1
    ids: dict[_Located, str] = {}
    for m in mentions:
        key = canonical.slugify(m.surface, group="")
        group = m.group if m.group == "person" else canonical.pick_group(list(votes[key].items()))
        slug = canonical.slugify(m.surface, group=group)
        if slug:
            ids[m] = canonical.entity_id(group=group, slug=slug)
    return ids


def _entity(eid: str, surfaces: Counter[str]) -> Entity:
    # Most frequent surface form, then the longest, then alphabetical: deterministic across replays.
    name = min(surfaces, key=lambda s: (-surfaces[s], -len(s), s))
    return Entity(entity_id=eid, label=eid.split(":", 1)[0], name=name, aliases=tuple(sorted(surfaces)))


def _relations(
    chunks: Sequence[Chunk],
    located: Mapping[str, list[_Located]],
    ids: Mapping[_Located, str],
    opts: ExtractOptions,
) -> tuple[Relation, ...]:
    weights: defaultdict[tuple[str, str, str], float] = defaultdict(float)
    seen_sentences: set[str] = set()
    for chunk in chunks:
        ms = [m for m in located[chunk.chunk_id] if m in ids]
        sentence_pairs: set[tuple[str, str]] = set()
        for a, b in split_sentences(chunk.text):
            inside = [m for m in ms if a <= m.start < b]
            pairs = _pairs([ids[m] for m in inside], opts.max_entities_per_unit)
            sentence_pairs |= pairs
            sentence = " ".join(chunk.text[a:b].split())
            if sentence in seen_sentences:
                continue  # overlapping chunks repeat sentences; count each sentence of the document once
            seen_sentences.add(sentence)
            for s, d in pairs:
                weights[(s, d, CO_SENTENCE)] += 1
            if opts.typed_relations:
                for key in _typed(chunk.text, inside, ids, opts.relation_max_gap_chars):
                    weights[key] += 1
        for s, d in _pairs([ids[m] for m in ms], opts.max_entities_per_unit) - sentence_pairs:
            weights[(s, d, CO_CHUNK)] += opts.chunk_cooccurrence_weight
    return tuple(
        Relation(src=s, dst=d, relation=r, weight=float(w))
        for (s, d, r), w in sorted(weights.items())
        if w > 0
    )


def _pairs(entity_ids: Sequence[str], cap: int) -> set[tuple[str, str]]:
    distinct = list(dict.fromkeys(entity_ids))[:cap]
    return {(a, b) if a < b else (b, a) for a, b in combinations(distinct, 2)}


def _typed(
    text: str, inside: Sequence[_Located], ids: Mapping[_Located, str], max_gap: int
) -> list[tuple[str, str, str]]:
    out = []
    for left, right in pairwise(inside):
        src, dst = ids[left], ids[right]
        if src == dst or right.start - left.end > max_gap:
            continue
        found = typed_relation(text[left.end : right.start])
        if found:
            relation, object_first = found
            out.append((dst, src, relation) if object_first else (src, dst, relation))
    return out
