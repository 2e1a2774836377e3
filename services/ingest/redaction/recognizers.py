"""Pattern recognizers for identifiers, tuned for the many layouts people actually type."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.ingest.redaction.policy import CREDIT_CARD, IBAN_CODE, PHONE_NUMBER, STREET_ADDRESS, US_SSN

Scorer = Callable[[str, re.Match[str]], float]

_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|tel|telephone|call(?:ed|ing)?|cell(?:phone)?|mobile|fax|office|home|work|reach|contact"
    r"|dial|text|sms|whatsapp|answering|number|no|nr|#)\b",
    re.IGNORECASE,
)
_SSN_CONTEXT = re.compile(r"\b(?:ssn|ssns|social\s+security|social|ss\s*#|ss\s+number|tax\s*id|tin)\b", re.I)
_CARD_CONTEXT = re.compile(
    r"\b(?:card|cc|credit|debit|visa|mastercard|amex|american\s+express|discover|maestro|pan)\b", re.I
)
_IBAN_CONTEXT = re.compile(r"\b(?:iban|account|acct|bank|transfer|wire|swift|bic)\b", re.I)

# Digit groups joined by one separator, an optional +country/00 prefix and an optional extension.
_PHONE = re.compile(
    r"(?<![\w.+/-])(?<!\d[,:])"
    r"(?:(?:\+|00)\d{1,3}[\s.-]?)?"
    r"(?:\(\d{1,5}\)[\s.-]?)?"
    r"\d{1,12}(?:[\s.-]\d{1,8}){0,5}"
    r"(?:[\s,]{0,2}(?:x|ext\.?|extension|#)\s?\d{1,6})?"
    r"(?![\w/]|[.,-]\d)",
    re.IGNORECASE,
)
_GROUP_START = re.compile(r"\s(?=[\d(+])")
_EXTENSION = re.compile(r"(?:x|ext\.?|extension|#)\s?\d{1,6}$", re.IGNORECASE)
_YEAR_RANGE = re.compile(r"^(?:1[89]|20)\d\d\s?[-.]\s?(?:1[89]|20)\d\d$")
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_SSN_LAYOUT = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_SSN = re.compile(r"(?<![\w-])(\d{3})([\s.-]?)(\d{2})\2(\d{4})(?![\w-])")
_CARD = re.compile(r"(?<![\w-])\d(?:[\s-]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?:[\s-]?[A-Z0-9]){11,30}(?![\w-])", re.IGNORECASE)

_STREET_TYPES = (
    r"street|st|road|rd|avenue|ave|av|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square|sq|terrace"
    r"|way|parkway|pkwy|highway|hwy|circle|cir|trail|crescent|close|row|alley|plaza|gardens|grove|hill"
    r"|mews|park|walk|bypass|causeway|expressway|freeway|pike|point|ridge|view|vista|rise"
)
_UNIT = r"(?:apt|apartment|suite|ste|unit|flat|room|rm|floor|fl)\.?\s*#?\s*\d+[a-z]?"
_CAP = r"[A-ZÀ-Þ][\w'’.-]*"
_ADDRESSES = (
    # "1600 Pennsylvania Avenue NW, Suite 4"
    re.compile(
        rf"(?<![\w.,-])\d{{1,6}}[a-z]?\s+(?:{_CAP}\s+){{1,4}}(?:(?i:{_STREET_TYPES}))\.?"
        rf"(?:\s+(?:N|S|E|W|NE|NW|SE|SW))?\b(?:,?\s+(?i:{_UNIT}))?"
    ),
    # Units and boxes on their own line: "Apt. 523", "P.O. Box 15", "Unit 2451 Box 9006"
    re.compile(rf"(?i:\b(?:{_UNIT}|p\.?\s?o\.?\s*box\s+\d+|box\s+\d{{2,}})\b)"),
    # Street name then number, as in most of Europe: "Rua Papoula 1998", "Hansinegata 120", "ul. Miła 131"
    re.compile(
        r"(?i:\b(?:rua|rue|via|viale|calle|carrer|avenida|avda|av\.|ul\.|ulica|plac|piazza|praça|travessa"
        r"|largo|strada|chemin|allée|boulevard|route)\s+)(?:[\w'’.-]+\s+){0,4}\d{1,5}[a-z]?\b"
    ),
    re.compile(
        r"\b[A-ZÀ-Þa-zß-ÿ][\w-]*(?i:straße|strasse|str\.|gasse|weg|gata|gatan|gade|vej|veien|vei|vägen|laan"
        r"|straat|plein|tie|katu|utca|ulica|cesta|ulice|sokak|caddesi)\s+\d{1,5}[a-z]?\b"
    ),
)


def window(text: str, start: int, end: int, *, before: int = 40, after: int = 25) -> str:
    """Text around a match, where context words are looked for."""
    return f"{text[max(0, start - before) : start]} {text[end : end + after]}"


def luhn_ok(digits: str) -> bool:
    """Luhn checksum, which every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN, whatever its spacing and case."""
    compact = re.sub(r"[\s-]", "", value).upper()
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


class RegexRecognizer(LocalRecognizer):
    """One entity type found by regexes, each match scored by a function that may look at context."""

    def __init__(self, *, entity: str, patterns: Iterable[re.Pattern[str]], scorer: Scorer) -> None:
        self._patterns = tuple(patterns)
        self._scorer = scorer
        super().__init__(supported_entities=[entity], supported_language="en", name=f"headwater-{entity}")

    def load(self) -> None:
        """Nothing to load: the patterns are compiled at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Score every match; the analyzer drops those under the policy threshold."""
        entity = self.supported_entities[0]
        if entity not in entities:
            return []
        results = []
        for pattern in self._patterns:
            for match in pattern.finditer(text):
                found = self._score(text, pattern, match)
                if found is not None:
                    results.append(
                        RecognizerResult(entity, found.start(), found.end(), self._scorer(text, found))
                    )
        return results

    def _score(self, text: str, pattern: re.Pattern[str], match: re.Match[str]) -> re.Match[str] | None:
        return match if self._scorer(text, match) > 0 else None


class PhoneRecognizer(RegexRecognizer):
    """Phones; a run that is too long is retried without its leading groups ("71366 078 6657 2626")."""

    def __init__(self) -> None:
        super().__init__(entity=PHONE_NUMBER, patterns=[_PHONE], scorer=_phone_score)

    def _score(self, text: str, pattern: re.Pattern[str], match: re.Match[str]) -> re.Match[str] | None:
        candidate: re.Match[str] | None = match
        while candidate is not None:
            if _phone_score(text, candidate) > 0:
                return candidate
            cut = _GROUP_START.search(text, candidate.start(), candidate.end())
            candidate = pattern.match(text, cut.end(), match.end()) if cut else None
        return None


def _phone_score(text: str, match: re.Match[str]) -> float:
    value = match.group().rstrip()
    body = _EXTENSION.sub("", value).strip(" ,")
    digits = re.sub(r"\D", "", body)
    if not 6 <= len(digits) <= 15 or _YEAR_RANGE.match(body) or _DATE.match(body) or _SSN_LAYOUT.match(body):
        return 0.0
    groups = re.split(r"[\s.()-]+", body.strip("()+"))
    if "." in body and (re.search(r"[\s-]", body) or body.count(".") == 1):
        return 0.0  # decimals and ranges of them ("237.17-394.4"); dotted phones use dots only
    context = _PHONE_CONTEXT.search(window(text, match.start(), match.end())) is not None
    if len(groups) == 1 and not context and not body.startswith(("+", "00")):
        return 0.0  # a bare run of digits is a count, an id or a code far more often than a phone
    shaped = (
        body.startswith(("+", "(", "00"))
        or value != body  # an extension
        or re.fullmatch(r"\d{3}[.-]\d{3}[.-]\d{4}", body) is not None
        or (digits.startswith("0") and len(digits) >= 8)
    )
    score = 0.6 if shaped and len(digits) >= 8 else 0.35
    if context:
        score += 0.35
    return min(score, 1.0) if len(digits) >= 7 or context else 0.0


def _ssn_score(text: str, match: re.Match[str]) -> float:
    area, separator, group, serial = match.group(1), match.group(2), match.group(3), match.group(4)
    if area == "000" or group == "00" or serial == "0000":
        return 0.0
    context = _SSN_CONTEXT.search(window(text, match.start(), match.end(), before=50)) is not None
    if context:
        return 0.95
    # ddd-dd-dddd is the SSN's own layout; bare 9 digits are not, so they need context.
    return 0.6 if separator == "-" else 0.0


def _card_score(text: str, match: re.Match[str]) -> float:
    digits = re.sub(r"\D", "", match.group())
    context = _CARD_CONTEXT.search(window(text, match.start(), match.end(), before=50)) is not None
    if luhn_ok(digits):
        return 1.0 if context or digits[0] in "3456" else 0.6
    return 0.7 if context else 0.0


def _iban_score(text: str, match: re.Match[str]) -> float:
    if iban_ok(match.group()):
        return 1.0
    return 0.6 if _IBAN_CONTEXT.search(window(text, match.start(), match.end())) else 0.0


def _address_score(text: str, match: re.Match[str]) -> float:
    return 0.6


def identifier_recognizers() -> list[RegexRecognizer]:
    """Our recognizers for phones, SSNs, cards, IBANs and street addresses."""
    return [
        PhoneRecognizer(),
        RegexRecognizer(entity=US_SSN, patterns=[_SSN], scorer=_ssn_score),
        RegexRecognizer(entity=CREDIT_CARD, patterns=[_CARD], scorer=_card_score),
        RegexRecognizer(entity=IBAN_CODE, patterns=[_IBAN], scorer=_iban_score),
        RegexRecognizer(entity=STREET_ADDRESS, patterns=_ADDRESSES, scorer=_address_score),
    ]
