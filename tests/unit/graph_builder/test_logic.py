"""Pure extraction: entities, chunk support, co-occurrence weights, typed relations and enrichment."""

from __future__ import annotations

from schemas import ChangeOp, ChunkMention, ChunksEnriched
from services.graph_builder.domain import CO_CHUNK, CO_SENTENCE, DocumentGraph
from services.graph_builder.logic import ExtractOptions, enrich, extract
from tests.builders import chunk, chunks_embedded, mentions_of

ORG, GPE = "ORG", "GPE"


def _mentions(*chunks: object) -> dict[str, list[ChunkMention]]:
    return {c.chunk_id: list(c.mentions or []) for c in chunks}  # type: ignore[attr-defined]


def _weights(graph: DocumentGraph, relation: str) -> dict[tuple[str, str], float]:
    return {(r.src, r.dst): r.weight for r in graph.relations if r.relation == relation}


def test_sentence_cooccurrence_counts_sentences_and_chunk_cooccurrence_is_weaker() -> None:
    c1 = chunk(
        "c1", "Acme met Beta. Acme and Beta again. Gamma sat apart.", {"Acme": ORG, "Beta": ORG, "Gamma": ORG}
    )
    c2 = chunk("c2", "Beta hired Acme staff in Berlin.", {"Acme": ORG, "Beta": ORG, "Berlin": GPE})
    graph = extract(
        chunks_embedded(c1, c2), _mentions(c1, c2), options=ExtractOptions(chunk_cooccurrence_weight=0.25)
    )

    assert _weights(graph, CO_SENTENCE) == {
        ("org:acme", "org:beta"): 3.0,
        ("org:acme", "place:berlin"): 1.0,
        ("org:beta", "place:berlin"): 1.0,
    }
    # Gamma shares chunk c1 but no sentence with Acme and Beta.
    assert _weights(graph, CO_CHUNK) == {("org:acme", "org:gamma"): 0.25, ("org:beta", "org:gamma"): 0.25}


def test_support_counts_mentions_per_chunk() -> None:
    c1 = chunk("c1", "Acme, Acme and Acme Corp. met Beta.", {"Acme Corp.": ORG, "Acme": ORG, "Beta": ORG})
    c2 = chunk("c2", "The Acme Corporation's plan.", {"The Acme Corporation's": ORG})
    graph = extract(chunks_embedded(c1, c2), _mentions(c1, c2))

    assert graph.chunks_by_entity() == {"org:acme": {"c1": 3, "c2": 1}, "org:beta": {"c1": 1}}
    acme = next(e for e in graph.entities if e.entity_id == "org:acme")
    assert acme.name == "Acme"  # the most frequent surface form
    assert acme.aliases == ("Acme", "Acme Corp.", "Acme Corporation")


def test_overlapping_chunks_count_a_repeated_sentence_once() -> None:
    shared = "Acme met Beta."
    c1 = chunk("c1", f"Intro line. {shared}", {"Acme": ORG, "Beta": ORG})
    c2 = chunk("c2", f"{shared} Outro line.", {"Acme": ORG, "Beta": ORG})
    graph = extract(chunks_embedded(c1, c2), _mentions(c1, c2))

    assert _weights(graph, CO_SENTENCE) == {("org:acme", "org:beta"): 1.0}
    assert graph.chunks_by_entity()["org:acme"] == {"c1": 1, "c2": 1}  # both chunks still mention it


def test_label_variants_merge_to_the_documents_majority_group() -> None:
    text = "Jordan signed. Jordan grew. Jordan's river is long. Amman is in Jordan."
    ments = mentions_of(text, {"Amman": GPE})
    for i, label in enumerate([GPE, GPE, "LOC", ORG]):
        start = [k for k in range(len(text)) if text.startswith("Jordan", k)][i]
        ments.append(ChunkMention(label=label, text="Jordan", start=start, end=start + 6))
    c = chunk("c1", text)
    graph = extract(chunks_embedded(c), {"c1": ments})

    assert {e.entity_id for e in graph.entities} == {"place:jordan", "place:amman"}


def test_pseudonyms_are_person_entities_even_without_upstream_mentions() -> None:
    c = chunk("c1", "<PERSON_3f9a2c1b> joined Acme.", {"Acme": ORG})
    graph = extract(chunks_embedded(c), _mentions(c))

    person = next(e for e in graph.entities if e.label == "person")
    assert (person.entity_id, person.name) == ("person:3f9a2c1b", "<PERSON_3f9a2c1b>")
    assert ("person:3f9a2c1b", "org:acme", "works_for") in {
        (r.src, r.dst, r.relation) for r in graph.relations
    }


def test_typed_relations_follow_the_verb_and_passive_voice_flips_them() -> None:
    c = chunk(
        "c1",
        "Acme acquired Beta. Gamma was acquired by Delta. Acme is headquartered in Berlin.",
        {"Acme": ORG, "Beta": ORG, "Gamma": ORG, "Delta": ORG, "Berlin": GPE},
    )
    graph = extract(chunks_embedded(c), _mentions(c))

    typed = {(r.src, r.relation, r.dst) for r in graph.relations if r.relation not in (CO_SENTENCE, CO_CHUNK)}
    assert typed == {
        ("org:acme", "acquired", "org:beta"),
        ("org:delta", "acquired", "org:gamma"),
        ("org:acme", "located_in", "place:berlin"),
    }
    assert extract(
        chunks_embedded(c), _mentions(c), options=ExtractOptions(typed_relations=False)
    ).relations == tuple(r for r in graph.relations if r.relation in (CO_SENTENCE, CO_CHUNK))


def test_dates_numbers_bad_offsets_and_overlaps_are_dropped() -> None:
    text = "Acme Corp paid 5 dollars on Monday."
    ments = [
        ChunkMention(label=ORG, text="Acme Corp", start=0, end=9),
        ChunkMention(label=ORG, text="Acme", start=0, end=4),  # inside the longer one
        ChunkMention(label="DATE", text="Monday", start=28, end=34),
        ChunkMention(label="CARDINAL", text="5", start=15, end=16),
        ChunkMention(label=ORG, text="Nowhere", start=0, end=7),  # offsets and text disagree, text absent
        ChunkMention(label=ORG, text="dollars", start=0, end=3),  # bad offsets, text found elsewhere
    ]
    graph = extract(chunks_embedded(chunk("c1", text)), {"c1": ments})

    assert graph.chunks_by_entity() == {"org:acme": {"c1": 1}, "org:dollars": {"c1": 1}}


def test_pairs_are_bounded_per_sentence() -> None:
    names = [f"Org{i}" for i in range(10)]
    c = chunk("c1", " ".join(names) + ".", dict.fromkeys(names, ORG))
    graph = extract(chunks_embedded(c), _mentions(c), options=ExtractOptions(max_entities_per_unit=4))

    assert len(_weights(graph, CO_SENTENCE)) == 6  # 4 choose 2
    assert len(graph.entities) == 10  # every entity keeps its support


def test_delete_and_empty_document_give_an_empty_graph() -> None:
    assert extract(chunks_embedded(op=ChangeOp.DELETE, version=3), {}) == DocumentGraph()
    assert extract(chunks_embedded(), {}) == DocumentGraph()


def test_enrich_lists_entities_per_chunk_and_keeps_every_field() -> None:
    c1 = chunk("c1", "Beta met Acme. Acme again.", {"Acme": ORG, "Beta": ORG}, position=0)
    c2 = chunk("c2", "Nothing here.", {}, position=1)
    event = chunks_embedded(c1, c2)

    enriched = enrich(event, extract(event, _mentions(c1, c2)))

    assert isinstance(enriched, ChunksEnriched)
    assert enriched.kind == "chunks.enriched"
    assert [(e.chunk_id, e.entity_ids) for e in enriched.entities] == [
        ("c1", ["org:acme", "org:beta"]),
        ("c2", []),
    ]
    assert enriched.model_dump(exclude={"kind", "entities"}) == event.model_dump(exclude={"kind"})
    assert ChunksEnriched.model_validate_json(enriched.model_dump_json()) == enriched  # survives the wire


def test_extraction_is_deterministic() -> None:
    c = chunk("c1", "Acme met Beta in Berlin. Beta left.", {"Acme": ORG, "Beta": ORG, "Berlin": GPE})
    assert extract(chunks_embedded(c), _mentions(c)) == extract(chunks_embedded(c), _mentions(c))
