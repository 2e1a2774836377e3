"""Name gazetteer: first and last names from Faker's locales, and English words that double as names."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import faker.providers.person
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.strings import get_string_id

_NAME_LISTS = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names")
_LETTERS = re.compile(r"[^\W\d_]{2,}")
# Latin-script names only: the NER model and our heuristics are English, and other scripts would be
# matched letter-for-letter anyway.
_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ɏ]+")


# Names that are also everyday words or dates, so a capitalised one is weak evidence on its own.
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_COMMON_EXTRA = frozenset({*_MONTHS, "november", "december", *_DAYS})


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """Casefolded name parts, and English vocabulary to tell names from words."""

    names: frozenset[str]
    common: frozenset[str]  # names that are also English verbs, adjectives, adverbs or dates
    dictionary: frozenset[str]  # every English word WordNet knows, proper nouns included

    def is_name(self, word: str) -> bool:
        """Whether a word is a known first or last name."""
        return word.casefold() in self.names

    def is_common(self, word: str) -> bool:
        """Whether a name is also an everyday word ("Will", "Long", "Grant", "May")."""
        return word.casefold() in self.common

    def is_word(self, word: str) -> bool:
        """Whether a word is in the English dictionary at all."""
        return word.casefold() in self.dictionary


def _faker_names() -> set[str]:
    names: set[str] = set()
    for module_info in pkgutil.iter_modules(faker.providers.person.__path__):
        module = importlib.import_module(f"{faker.providers.person.__name__}.{module_info.name}")
        provider = getattr(module, "Provider", None)
        for attribute in _NAME_LISTS:
            values = getattr(provider, attribute, None)
            if not isinstance(values, list | tuple | dict):
                continue  # some locales expose these as properties computed per instance
            for value in values:
                if isinstance(value, str):
                    # "De Schrijver", "Ó Cnáimhsighe": every part of 3+ letters is a name part.
                    names.update(p.casefold() for p in _LETTERS.findall(value) if _LATIN.fullmatch(p))
    return names


def _wordnet(nlp: Language) -> dict[str, set[str]]:
    # WordNet's lemma index ships inside the spaCy model: a dictionary of English we need not download.
    lemmatizer: Any = nlp.get_pipe("lemmatizer")
    table = lemmatizer.lookups.get_table("lemma_index")
    return {
        pos: {word.casefold() for word in table[get_string_id(pos)] if word.isalpha()}
        for pos in ("noun", "verb", "adj", "adv")
    }


@lru_cache(maxsize=1)
def load_gazetteer(nlp: Language) -> Gazetteer:
    """Build the gazetteer once per process (about 0.3 s)."""
    names = frozenset(name for name in _faker_names() if len(name) >= 3) - STOP_WORDS
    wordnet = _wordnet(nlp)
    # Nouns are left out of `common`: WordNet's nouns include proper names ("Gregory", "Nina").
    common = (wordnet["verb"] | wordnet["adj"] | wordnet["adv"] | _COMMON_EXTRA) & names
    return Gazetteer(
        names=names, common=frozenset(common), dictionary=frozenset(set().union(*wordnet.values()))
    )
