"""Leak rates of the redaction stage over Presidio's synthetic PII dataset (2,109 labelled sentences)."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from services.ingest.redaction import Redactor

DATASET = (
    Path(__file__).resolve().parents[3] / "shared" / "datasets" / "pii" / "presidio-generated-large.json"
)
# The dataset's labels mapped to our entity types; the others (LOCATION, ORGANIZATION, DATE_TIME, TITLE,
# DOMAIN_NAME, PREFIX, US_DRIVER_LICENSE) are not PII under our default policy.
LABELS = {
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
    "ADDRESS": "STREET_ADDRESS",
}
# Largest tolerated leak fraction per type; street addresses are reported but have no target yet.
TARGETS = {
    "EMAIL_ADDRESS": 0.01,
    "PHONE_NUMBER": 0.01,
    "CREDIT_CARD": 0.01,
    "US_SSN": 0.01,
    "IBAN_CODE": 0.01,
    "IP_ADDRESS": 0.01,
    "PERSON": 0.10,
}
_NON_ALNUM = re.compile(r"[\W_]+")


def leaked(entity: str, value: str, redacted: str) -> bool:
    """Strict survival test: identifiers in any layout; names if any part of 3+ letters is still a word."""
    if entity == "PERSON":
        parts = [part for part in re.findall(r"[^\W\d_]+", value) if len(part) >= 3]
        return any(re.search(rf"(?<!\w){re.escape(part)}(?!\w)", redacted, re.IGNORECASE) for part in parts)
    compact = _NON_ALNUM.sub("", value).lower()
    return bool(compact) and compact in _NON_ALNUM.sub("", redacted).lower()


@pytest.mark.slow
@pytest.mark.skipif(not DATASET.exists(), reason="the shared PII dataset is not present")
def test_labelled_pii_does_not_survive_redaction(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    records = json.loads(DATASET.read_text(encoding="utf-8"))
    redacted = Redactor(secret=b"leak-test-secret-0123456789").redact_batch(
        [record["full_text"] for record in records], tenant="leak-test"
    )

    totals: dict[str, Counter[str]] = {"even": Counter(), "odd": Counter(), "all": Counter()}
    leaks: dict[str, Counter[str]] = {"even": Counter(), "odd": Counter(), "all": Counter()}
    values: set[str] = set()
    for index, (record, result) in enumerate(zip(records, redacted, strict=True)):
        half = "even" if index % 2 == 0 else "odd"
        for span in record["spans"]:
            entity = LABELS.get(span["entity_type"])
            if entity is None:
                continue
            values.add(span["entity_value"])
            is_leak = leaked(entity, span["entity_value"], result.text)
            for split in (half, "all"):
                totals[split][entity] += 1
                leaks[split][entity] += is_leak

    print("\nleak rate by type (even half tuned on, odd half held out)")
    print(f"{'type':16}{'even':>16}{'odd':>16}{'all':>16}")
    for entity in sorted(totals["all"]):
        cells = [
            f"{leaks[s][entity]}/{totals[s][entity]}={leaks[s][entity] / totals[s][entity]:.1%}"
            for s in totals
        ]
        print(f"{entity:16}" + "".join(f"{cell:>16}" for cell in cells))

    failures = {
        entity: leaks["all"][entity] / totals["all"][entity]
        for entity, target in TARGETS.items()
        if totals["all"][entity] and leaks["all"][entity] / totals["all"][entity] > target
    }
    assert not failures, f"leak targets missed: {failures}"

    assert caplog.records, "debug logging was on, so the redactor's summary line must have been captured"
    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert not [value for value in values if len(value) >= 4 and value in logged]
