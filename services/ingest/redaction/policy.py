"""What the redaction stage removes, and how sure a detector must be before it does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

PERSON = "PERSON"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
IBAN_CODE = "IBAN_CODE"
US_SSN = "US_SSN"
IP_ADDRESS = "IP_ADDRESS"
STREET_ADDRESS = "STREET_ADDRESS"

DEFAULT_ENTITIES: frozenset[str] = frozenset(
    {PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS, STREET_ADDRESS}
)

# Entities the NER pass finds that are not PII: they stay in the text and are handed to graph extraction.
MENTION_LABELS: frozenset[str] = frozenset(
    {"ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "NORP", "FAC"}
)

# Scores below these are dropped. Recognizers score weak shapes (a bare 9-digit number, a capitalised
# word that is also an English word) under 0.5 and raise them only with context, so 0.5 is the cut.
_DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType({STREET_ADDRESS: 0.55})


@dataclass(frozen=True, slots=True, kw_only=True)
class RedactionPolicy:
    """Which entity types are replaced by pseudonyms, and the minimum score per type."""

    entities: frozenset[str] = DEFAULT_ENTITIES
    default_threshold: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=lambda: _DEFAULT_THRESHOLDS)
    mention_labels: frozenset[str] = MENTION_LABELS

    def __post_init__(self) -> None:
        scores = [self.default_threshold, *self.thresholds.values()]
        if any(not 0.0 <= score <= 1.0 for score in scores):
            raise ValueError("thresholds are scores between 0 and 1")
        # A frozen policy must not change behind the redactor's back through a shared dict.
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))

    def threshold_for(self, entity: str) -> float:
        """Minimum score a finding of `entity` needs to be redacted."""
        return self.thresholds.get(entity, self.default_threshold)
