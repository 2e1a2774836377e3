"""Name gazetteer: first and last names from Faker's locales, and English words that double as names."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import faker.providers.person
from spacy.language import Language

_NAME_LISTS = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names")
_LETTERS = re.compile(r"[^\W\d_]{2,}")
# Latin-script names only: the NER model and our heuristics are English, and other scripts would be
# matched letter-for-letter anyway.
_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ɏ]+")


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """Casefolded name parts, and the subset that are also ordinary English words."""

    names: frozenset[str]
    english: frozenset[str]

    def is_name(self, word: str) -> bool:
        """Whether a word is a known first or last name."""
        return word.casefold() in self.names

    def is_english(self, word: str) -> bool:
        """Whether a word is also a dictionary word ("Will", "Long", "Bell"), so it needs more evidence."""
        return word.casefold() in self.english


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


def _dictionary_words(nlp: Language) -> set[str]:
    # WordNet's lemma index ships inside the spaCy model: a dictionary of English we need not download.
    lemmatizer: Any = nlp.get_pipe("lemmatizer")
    table = lemmatizer.lookups.get_table("lemma_index")
    return {word.casefold() for key in table for word in table[key] if word.isalpha()}


@lru_cache(maxsize=1)
def load_gazetteer(nlp: Language) -> Gazetteer:
    """Build the gazetteer once per process (about 0.2 s)."""
    names = frozenset(name for name in _faker_names() if len(name) >= 3)
    return Gazetteer(names=names, english=frozenset(names & _dictionary_words(nlp)))
