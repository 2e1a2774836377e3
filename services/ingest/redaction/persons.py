"""Person names: spaCy's NER, widened by a name gazetteer, honorifics and nearby cue words."""

from __future__ import annotations

import re

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc, Token

from services.ingest.redaction.names import Gazetteer
from services.ingest.redaction.policy import PERSON

NER_SCORE = 0.85
STRONG = 0.6  # a capitalised known name: enough on its own
WEAK = 0.35  # a name that is also a common word, or opens a sentence: needs company or a cue
JOINER = 0.3  # a word that only joins a group ("David Lange", "Jared Paavolainen")
LISTED = 0.5  # listed beside a name: "Schulz, Strickland and Ann Lee"
_NOT_PERSON_ENTITIES = frozenset(
    {"ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}
)
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
# Post-nominals that belong to the name they follow, so they go with it.
_SUFFIXES = frozenset({"phd", "md", "dvm", "dds", "jr", "sr", "esq", "ii", "iii", "iv", "mba", "rn", "cpa"})
_CUE_BEFORE = re.compile(
    r"\b(?:name|named|names|called|calls\s+me|call\s+me|dear|hi|hello|hey|thanks|thank\s+you|regards|sincerely"
    r"|signed|cheers|contact|ask|tell|told|met|meet|spoke\s+(?:to|with)|talk\s+to|wife|husband|son|daughter"
    r"|brother|sister|mother|father|friend|colleague|boss|manager|patient|client|customer|employee|i\W{0,2}m|i\s+am"
    r"|this\s+is|said|says|asked|user|under)\W{0,3}(?:is\W+)?$",
    re.IGNORECASE,
)
_EPONYM_AFTER = re.compile(
    r"(?:['’]s?)?\s*(?:[-–]\s*[A-Z][\w-]*\s*)?(?:[A-Z0-9]{1,3}\s+)?(?i:disease|syndrome|area|sign|test|law|rule|scale|score|inventory"
    r"|index|criteri(?:a|on)|classification|equation|model|method|regression|distribution|curve|analysis"
    r"|effect|cells?|bod(?:y|ies)|tumou?r|lymphoma|sarcoma|procedure|operation|correction|coefficient"
    r"|estimator|plot|statistic|algorithm|depression|rating|hypothesis|principle|theorem|transform|factor"
    r"|reaction|stain|staining|pathway|signaling|signalling|receptor|protein|gene|kinase|domain|study)\b"
)
_LIST_GLUE = frozenset({",", "and", "or", "&"})
_PLACES = frozenset({"GPE", "LOC"})
_CORPORATE = re.compile(
    r"\b(?:ltd|inc|llc|llp|plc|gmbh|corp|corporation|co|company|group|ag|sa|bv)\b\.?", re.I
)
_STRONG_CUE = re.compile(
    r"\b(?:name\s+is|name's|call\s+me|calls\s+me|i\W{0,2}m|this\s+is|dear|hi|hello|says|said)\W{0,3}$", re.I
)
# Internal capitals mark symbols ("CsA", "ApoE"); Mc/Mac/De/Di/La/Le/O' start names ("McKenzie", "DeRose").
_CAMEL = re.compile(r"^(?!Mc|Mac|De|Di|Da|La|Le|Van|O['’])[^\W\d_][^\W\d_]*?[a-z][A-Z]")
_SCIENTIFIC_SUFFIX = re.compile(
    r"(?:ase|ases|osis|emia|aemia|itis|oma|cytes?|plasia|ploidy|somy|idine|osine|amine|ide|ol|gen|somes?|lysis"
    r"|pathy|genesis|ectomy|ium|idae|aceae|ata|ensin|ulin|ectin|statin|mab|nib|ine|ics|ology)$"
)
_DETERMINERS = frozenset(
    {"the", "a", "an", "this", "these", "those", "its", "their", "our", "another", "each"}
)
_PARTICLES = frozenset(
    {
        "van",
        "von",
        "der",
        "den",
        "de",
        "del",
        "della",
        "di",
        "da",
        "du",
        "le",
        "la",
        "ten",
        "ter",
        "dos",
        "das",
    }
)
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_SENTENCE_END = frozenset({".", "!", "?", '"', "“", "(", "\n", ">", "-", "•", "*"})


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
        # Chat logs and forms are often typed in lower case: there, case says nothing about names.
        caseless = not any(char.isupper() for char in text)
        scores = self._token_scores(doc, caseless=caseless)
        self._extend_to_neighbours(doc, scores, caseless=caseless)
        self._spread_through_lists(doc, scores, caseless=caseless)
        results = []
        index = 0
        while index < len(doc):
            if scores[index] <= 0:
                index += 1
                continue
            end = index
            while end + 1 < len(doc) and scores[end + 1] > 0 and doc[end].whitespace_ == " ":
                end += 1
            group = scores[index : end + 1]
            score = max(group) + (0.2 if sum(1 for s in group if s >= WEAK) >= 2 else 0.0)
            start_char, end_char = doc[index].idx, doc[end].idx + len(doc[end].text)
            if _after_honorific(doc, index):
                score += 0.3
                start_char = doc[index - 1].idx if doc[index - 1].text != "." else doc[index - 2].idx
            elif _CUE_BEFORE.search(text[max(0, start_char - 25) : start_char]):
                score += 0.3
            elif _EPONYM_AFTER.match(text, end_char):
                score = min(score, JOINER)  # "Parkinson's disease", "Hamilton Rating Scale", "Kaplan-Meier"
            if score >= WEAK:
                results.append(RecognizerResult(PERSON, start_char, end_char, min(score, 1.0)))
            index = end + 1
        return results

    def _token_scores(self, doc: Doc, *, caseless: bool) -> list[float]:
        # A capitalised word also written in lower case in the same text is a common noun there
        # ("Gene selection ... gene", "Fructosamine ... fructosamine").
        lowered = set() if caseless else {token.text for token in doc if token.is_lower}
        headline = _headline_tokens(doc, self._gazetteer)
        scores = [
            self._gazetteer_score(token, caseless=caseless, headline=token.i in headline) for token in doc
        ]
        for entity in doc.ents:
            if entity.label_ == PERSON and not any(char.isdigit() for char in entity.text):
                for token in entity:
                    scores[token.i] = max(scores[token.i], self._ner_score(token, caseless=caseless))
            elif entity.label_ in _NOT_PERSON_ENTITIES:
                corporate = _CORPORATE.search(entity.text) is not None
                for token in entity:
                    # The small model calls many rare names ORG or FAC, so its word counts only for
                    # places that are dictionary words ("Paris", "Jordan") and company names ("Smith Ltd.").
                    if corporate or (entity.label_ in _PLACES and self._gazetteer.is_word(token.text)):
                        scores[token.i] = max(0.0, scores[token.i] - 0.25)
        for token in doc:
            if (token.text.lower() in lowered and not _after_honorific(doc, token.i)) or _slashed(token):
                scores[token.i] = 0.0
            elif (
                scores[token.i] == 0
                and self._joinable(token, caseless=caseless)
                and _STRONG_CUE.search(doc.text[max(0, token.idx - 20) : token.idx])
            ):
                scores[token.i] = 0.5  # "My name is Nunzia", "call me Izaak"
        return scores

    def _ner_score(self, token: Token, *, caseless: bool) -> float:
        """NER's PERSON, trusted less where spaCy's small model often errs on technical text."""
        word = token.text
        if not _WORD.fullmatch(word) or word.lower() in STOP_WORDS:
            return 0.0
        if not caseless and not _is_title(word):
            return 0.0  # "IC", "RNA", "METHODS", "astrocyte": acronyms and common nouns, not people
        if _CAMEL.search(word):
            return 0.0  # "CsA", "ApoE", "SsbB": gene and protein symbols
        if self._gazetteer.is_name(word):
            return NER_SCORE
        previous = token.doc[token.i - 1].lower_ if token.i else ""
        if (
            self._gazetteer.is_word(word)  # "Hippo", "Albumin", "Celiac"
            or len(word) <= 3  # "Dvl", "Lpd", "Cre"
            or _SCIENTIFIC_SUFFIX.search(word)  # "Condensin", "Myelodysplasia", "Tetraploidy"
            or previous in _DETERMINERS  # "the Golli transcription unit"
        ):
            return JOINER  # needs a name beside it or a cue
        return NER_SCORE

    def _gazetteer_score(self, token: Token, *, caseless: bool, headline: bool) -> float:
        word = token.text
        if len(word) < 3 or not _WORD.fullmatch(word) or word.lower() in STOP_WORDS:
            return 0.0
        parts = [part for part in re.split(r"[-'’]", word) if len(part) >= 3]
        known = bool(parts) and all(self._gazetteer.is_name(part) for part in parts)
        capitalised = _is_title(word) or (caseless and word.islower())
        if capitalised and _after_honorific(token.doc, token.i):
            return 0.9
        if not known:
            return 0.0
        if not capitalised:
            return JOINER if word.islower() and not self._gazetteer.is_word(word) else 0.0
        if any(self._gazetteer.is_common(part) for part in parts):
            return 0.0 if headline else WEAK
        if headline and self._gazetteer.is_word(word):
            return 0.0
        if _opens_sentence(token) and self._gazetteer.is_word(word):
            return WEAK  # "Aurora B kinase ...", "Gene selection ...": could be a capitalised word
        return STRONG

    def _extend_to_neighbours(self, doc: Doc, scores: list[float], *, caseless: bool) -> None:
        """Unknown capitalised words next to a name join it: "Kimberly Lauritsen", "Sean Vizirov DVM"."""
        for token in doc[:-1]:
            following = token.nbor()
            if (
                token.lower_ in _PARTICLES
                and token.whitespace_ == " "
                and self._joinable(following, caseless=caseless)
                and following.lower_ not in _PARTICLES
            ):
                # "van Gijn", "de Vaan": a particle before an unknown capitalised word is a surname.
                scores[token.i] = max(scores[token.i], WEAK + 0.1)
                scores[following.i] = max(scores[following.i], WEAK + 0.1)
        changed = True
        while changed:
            changed = False
            for token in doc:
                if scores[token.i] > 0 or not self._joinable(token, caseless=caseless):
                    continue
                before = token.i > 0 and scores[token.i - 1] >= WEAK and doc[token.i - 1].whitespace_ == " "
                after = token.i + 1 < len(doc) and scores[token.i + 1] >= WEAK and token.whitespace_ == " "
                if before or after:
                    scores[token.i] = JOINER + 0.1
                    changed = True

    def _spread_through_lists(self, doc: Doc, scores: list[float], *, caseless: bool) -> None:
        """Name-like words listed with a name are names: "Schulz, Strickland and Ann Lee"."""
        changed = True
        while changed:
            changed = False
            for token in doc:
                if scores[token.i] >= LISTED or not (
                    scores[token.i] > 0
                    or self._gazetteer.is_name(token.text)
                    or self._joinable(token, caseless=caseless)
                ):
                    continue
                if any(scores[i] >= LISTED for i in _conjuncts(doc, token.i)):
                    scores[token.i] = LISTED
                    changed = True

    def _joinable(self, token: Token, *, caseless: bool) -> bool:
        word = token.text
        if word.lower() in _PARTICLES:
            following = token.nbor() if token.i + 1 < len(token.doc) else None
            return following is not None and (_is_title(following.text) or caseless)
        if word.lower().rstrip(".") in _SUFFIXES:
            return token.i > 0
        if len(word) < 2 or not _WORD.fullmatch(word) or word.lower() in STOP_WORDS:
            return False
        shaped = _is_title(word) or (caseless and word.islower()) or word[:2].lower() in ("mc", "de", "va")
        return shaped and not self._gazetteer.is_word(word)


def _is_title(word: str) -> bool:
    return word[:1].isupper() and not word.isupper()


def _slashed(token: Token) -> bool:
    """Whether a token is glued to a slash: "CRISPR/Cas", "Vangl2/Ltap" name systems, not people."""
    doc = token.doc
    before = token.i > 0 and doc[token.i - 1].text == "/" and not doc[token.i - 1].whitespace_
    after = token.i + 1 < len(doc) and doc[token.i + 1].text == "/" and not token.whitespace_
    return before or after


def _conjuncts(doc: Doc, index: int) -> list[int]:
    """The words listed just before and after a token, across commas, "and", "or" and "&"."""
    found = []
    for step in (-1, 1):
        position, skipped = index + step, 0
        while 0 <= position < len(doc) and doc[position].lower_ in _LIST_GLUE:
            position, skipped = position + step, skipped + 1
        if skipped and 0 <= position < len(doc):
            found.append(position)
    return found


def _headline_tokens(doc: Doc, gazetteer: Gazetteer) -> set[int]:
    """Tokens of lines in title case ("Glucose Control in Clinical Studies"), where case says little."""
    headline: set[int] = set()
    line: list[Token] = []
    for token in [*doc, None]:
        if token is not None and "\n" not in token.text:
            line.append(token)
            continue
        words = [t for t in line if t.is_alpha and t.lower_ not in STOP_WORDS]
        titled = sum(1 for t in words if _is_title(t.text) and not gazetteer.is_name(t.text))
        if len(words) >= 3 and titled >= 0.6 * len(words):
            headline.update(t.i for t in line)
        line = []
    return headline


def _opens_sentence(token: Token) -> bool:
    return (
        token.i == 0
        or token.doc[token.i - 1].text[-1:] in _SENTENCE_END
        or "\n" in token.doc[token.i - 1].text
    )


def _after_honorific(doc: Doc, index: int) -> bool:
    previous = doc[index - 1] if index > 0 else None
    if previous is not None and previous.text == "." and index > 1:
        previous = doc[index - 2]
    return previous is not None and previous.lower_.rstrip(".") in _HONORIFICS
