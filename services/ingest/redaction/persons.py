"""Person names: spaCy's NER, widened by a name gazetteer, honorifics and nearby cue words."""

from __future__ import annotations

import re

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.tokens import Doc, Token

from services.ingest.redaction.names import Gazetteer
from services.ingest.redaction.policy import PERSON

NER_SCORE = 0.85
_HONORIFICS = frozenset(
    {
        *("mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "madam", "dame", "lord", "lady"),
        *(
            "mme",
            "mlle",
            "herr",
            "frau",
            "señor",
            "senora",
            "señora",
            "sr",
            "sra",
            "rev",
            "fr",
            "capt",
            "sgt",
        ),
    }
)
_CUES = re.compile(
    r"\b(?:name|named|names|called|dear|hi|hello|hey|thanks|thank|regards|sincerely|signed|cheers|contact|ask"
    r"|tell|told|met|meet|spoke|speak|talk|talked|wife|husband|son|daughter|brother|sister|mother|father"
    r"|friend|colleague|boss|manager|mr|mrs|ms|miss|dr|patient|client|customer|employee|i'm|i am|this is)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def _is_title(word: str) -> bool:
    return word[:1].isupper() and not word.isupper()


class PersonRecognizer(LocalRecognizer):
    """Groups adjacent name-like tokens and scores each group by how much evidence it has."""

    def __init__(self, *, gazetteer: Gazetteer) -> None:
        self._gazetteer = gazetteer
        super().__init__(supported_entities=[PERSON], supported_language="en", name="headwater-PERSON")

    def load(self) -> None:
        """Nothing to load: the gazetteer is built by the engine."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Person spans of one text, from the Doc of the shared spaCy pass."""
        if PERSON not in entities or nlp_artifacts is None:
            return []
        doc: Doc = nlp_artifacts.tokens
        scores = self._token_scores(doc)
        results = []
        index = 0
        while index < len(doc):
            if scores[index] <= 0:
                index += 1
                continue
            end = index
            while end + 1 < len(doc) and scores[end + 1] > 0 and "\n" not in doc[end].whitespace_:
                end += 1
            group = [scores[i] for i in range(index, end + 1)]
            score = max(group)
            if sum(1 for s in group if s >= 0.3) >= 2:
                score += 0.2  # "Kimberly Lauritsen": two name-like words in a row
            start_char, end_char = doc[index].idx, doc[end].idx + len(doc[end].text)
            if _CUES.search(text[max(0, start_char - 30) : start_char]) or self._after_honorific(doc, index):
                score += 0.3
            results.append(RecognizerResult(PERSON, start_char, end_char, min(score, 1.0)))
            index = end + 1
        return results

    def _token_scores(self, doc: Doc) -> list[float]:
        ner = [0.0] * len(doc)
        for entity in doc.ents:
            if entity.label_ == PERSON and not any(char.isdigit() for char in entity.text):
                for token in entity:
                    ner[token.i] = NER_SCORE
        return [max(ner[token.i], self._gazetteer_score(token)) for token in doc]

    def _gazetteer_score(self, token: Token) -> float:
        word = token.text
        if len(word) < 3 or not _WORD.fullmatch(word):
            return 0.0
        parts = re.split(r"[-'’]", word)
        if not all(self._gazetteer.is_name(part) for part in parts if len(part) >= 3):
            if _is_title(word) and token.i > 0 and self._after_honorific(token.doc, token.i):
                return 0.9
            return 0.0
        english = any(self._gazetteer.is_english(part) for part in parts)
        if _is_title(word):
            return 0.35 if english else 0.6
        if word.islower():
            return 0.0 if english else 0.3
        return 0.0

    @staticmethod
    def _after_honorific(doc: Doc, index: int) -> bool:
        previous = doc[index - 1] if index > 0 else None
        if previous is not None and previous.text == "." and index > 1:
            previous = doc[index - 2]
        return previous is not None and previous.lower_.rstrip(".") in _HONORIFICS
