"""Redaction stage: pseudonyms, detection of each default type, thresholds, mentions, events and logs."""

from __future__ import annotations

import logging
import re

import pytest

from schemas.common import ChangeOp
from schemas.documents import BlockKind, TextBlock
from services.ingest.redaction import RedactionPolicy, Redactor, redact_documents
from services.ingest.redaction import redactor as redactor_module
from services.ingest.redaction.policy import PERSON, PHONE_NUMBER
from services.ingest.redaction.pseudonyms import placeholder, tenant_key
from tests.builders import document_changed, para

SECRET = b"unit-test-secret-0123456789"
PLACEHOLDER = re.compile(r"<([A-Z_]+)_[0-9a-f]{8}>")

# One handcrafted example per default type: (entity, text, the value that must disappear).
EXAMPLES = [
    (PERSON, "Yesterday I met Kimberly Lauritsen at the station.", "Lauritsen"),
    ("EMAIL_ADDRESS", "Write to jane.doe@example.org for details.", "jane.doe@example.org"),
    (PHONE_NUMBER, "Call me on (212) 555-0199 x204 tomorrow.", "555-0199"),
    (PHONE_NUMBER, "My mobile is +44 20 7946 0958.", "7946 0958"),
    ("CREDIT_CARD", "Charge the card 4111 1111 1111 1111 please.", "4111 1111 1111 1111"),
    ("IBAN_CODE", "Wire it to GB82 WEST 1234 5698 7654 32 today.", "GB82 WEST 1234 5698 7654 32"),
    ("US_SSN", "Her social security number is 078-05-1120.", "078-05-1120"),
    ("IP_ADDRESS", "The login came from 192.168.14.7 at noon.", "192.168.14.7"),
    ("STREET_ADDRESS", "Ship it to 1600 Pennsylvania Avenue NW, Suite 4 soon.", "1600 Pennsylvania Avenue"),
]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(secret=SECRET)


@pytest.mark.parametrize(
    ("entity", "text", "value"), EXAMPLES, ids=[f"{e[0]}-{i}" for i, e in enumerate(EXAMPLES)]
)
def test_each_default_type_is_redacted(redactor: Redactor, entity: str, text: str, value: str) -> None:
    result = redactor.redact(text, tenant="acme")
    assert value not in result.text
    assert result.counts.get(entity, 0) >= 1
    assert entity in PLACEHOLDER.findall(result.text)


def test_pseudonyms_are_stable_within_a_tenant_and_differ_across_tenants(redactor: Redactor) -> None:
    texts = ["Kimberly Lauritsen signed the contract.", "The invoice was sent to Kimberly Lauritsen."]
    first, second = redactor.redact_batch(texts, tenant="acme")
    other = redactor.redact(texts[0], tenant="globex")
    name_a = PLACEHOLDER.search(first.text)
    name_b = PLACEHOLDER.search(second.text)
    name_c = PLACEHOLDER.search(other.text)
    assert name_a
    assert name_b
    assert name_c
    assert name_a.group() == name_b.group()
    assert name_a.group() != name_c.group()
    assert redactor.redact(texts[0], tenant="acme").text == first.text


def test_identifier_layouts_share_a_pseudonym_and_never_contain_the_value() -> None:
    key = tenant_key(secret=SECRET, tenant="acme")
    dashed = placeholder(key=key, entity=PHONE_NUMBER, value="212-555-0199")
    dotted = placeholder(key=key, entity=PHONE_NUMBER, value="(212) 555.0199")
    assert dashed == dotted
    assert "5550199" not in dashed
    assert PLACEHOLDER.fullmatch(dashed)
    assert placeholder(key=key, entity=PERSON, value="Ann Lee") == placeholder(
        key=key, entity=PERSON, value="ann  lee"
    )


def test_counts_sum_each_type(redactor: Redactor) -> None:
    text = "Mail ann@example.com or bob@example.net, or call 212-555-0199."
    result = redactor.redact(text, tenant="acme")
    assert result.counts == {"EMAIL_ADDRESS": 2, PHONE_NUMBER: 1}


def test_threshold_and_entity_list_are_respected() -> None:
    text = "Call 212-555-0199 and ask for Kimberly Lauritsen."
    strict = Redactor(secret=SECRET, policy=RedactionPolicy(thresholds={PHONE_NUMBER: 0.99}))
    no_people = Redactor(secret=SECRET, policy=RedactionPolicy(entities=frozenset({PHONE_NUMBER})))
    assert "212-555-0199" in strict.redact(text, tenant="acme").text
    kept = no_people.redact(text, tenant="acme")
    assert "Kimberly Lauritsen" in kept.text
    assert kept.counts == {PHONE_NUMBER: 1}


def test_ordinary_technical_text_is_left_alone(redactor: Redactor) -> None:
    text = (
        "Aurora B kinase phosphorylates histone H3 in 1,245 of 2,000 cells (95% CI 0.72-0.99, p = 0.001). "
        "Parkinson's disease risk rose between 1990-2005 per the Hamilton Rating Scale."
    )
    result = redactor.redact(text, tenant="acme")
    assert result.text == text
    assert result.counts == {}


def test_mentions_point_at_their_text_in_the_redacted_output(redactor: Redactor) -> None:
    text = (
        "Kimberly Lauritsen of Microsoft flew to Berlin; call her at 212-555-0199 before Christmas in Paris."
    )
    result = redactor.redact(text, tenant="acme")
    labels = {mention.label for mention in result.mentions}
    assert PERSON in labels
    assert "ORG" in labels
    assert "GPE" in labels
    for mention in result.mentions:
        assert result.text[mention.start : mention.end] == mention.text
    assert all(PLACEHOLDER.fullmatch(m.text) for m in result.mentions if m.label == PERSON)
    assert all(m.label != "CARDINAL" for m in result.mentions)


def test_long_texts_are_cut_into_segments_and_stitched_back(
    redactor: Redactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redactor_module, "MAX_SEGMENT_CHARS", 80)
    text = "\n".join(f"Line {i}: Kimberly Lauritsen of Microsoft, call 212-555-0199." for i in range(6))
    result = redactor.redact(text, tenant="acme")
    assert "Lauritsen" not in result.text
    assert "555-0199" not in result.text
    assert result.counts[PHONE_NUMBER] == 6
    for mention in result.mentions:
        assert result.text[mention.start : mention.end] == mention.text


def test_short_secrets_and_missing_tenants_are_refused(redactor: Redactor) -> None:
    with pytest.raises(ValueError, match="secret"):
        Redactor(secret=b"short")
    with pytest.raises(ValueError, match="tenant"):
        redactor.redact("hello", tenant="")


def test_redact_documents_redacts_title_and_blocks_and_passes_deletes_through(redactor: Redactor) -> None:
    blocks = [
        TextBlock(kind=BlockKind.HEADING, text="Contact", level=1),
        TextBlock(kind=BlockKind.PARAGRAPH, text="Reach Kimberly Lauritsen at Microsoft on 212-555-0199."),
    ]
    upsert = document_changed(*blocks, version=7, title="Notes from Kimberly Lauritsen", acl=["team-a"])
    delete = document_changed(op=ChangeOp.DELETE, version=7, acl=["team-a"])
    redacted, deleted = redact_documents([upsert, delete], redactor=redactor)

    assert redacted.kind == "document.redacted"
    assert redacted.event_id == upsert.event_id
    assert redacted.version == 7
    assert redacted.acl == ["team-a"]
    assert redacted.title is not None
    assert "Lauritsen" not in redacted.title
    assert [b.kind for b in redacted.blocks] == [BlockKind.HEADING, BlockKind.PARAGRAPH]
    assert redacted.blocks[1].text.count("<") == 2
    assert "555-0199" not in redacted.blocks[1].text
    assert redacted.pii_counts == {PERSON: 2, PHONE_NUMBER: 1}  # the title's name counts too
    assert redacted.mentions
    assert {m.block for m in redacted.mentions} == {1}
    for mention in redacted.mentions:
        assert redacted.blocks[mention.block].text[mention.start : mention.end] == mention.text

    assert deleted.op is ChangeOp.DELETE
    assert deleted.blocks == []
    assert deleted.pii_counts == {}
    assert deleted.event_id == delete.event_id


def test_no_value_reaches_the_logs(redactor: Redactor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("presidio-analyzer", redactor_module.__name__):
        caplog.set_level(logging.DEBUG, logger=name)
    values = [value for _, _, value in EXAMPLES] + ["Kimberly", "Lauritsen"]
    redactor.redact_batch([text for _, text, _ in EXAMPLES], tenant="acme")
    redact_documents(
        [document_changed(para(EXAMPLES[3][1]), title="Notes from Kimberly Lauritsen")],
        redactor=redactor,
    )
    assert any(record.name == redactor_module.__name__ for record in caplog.records), "the debug line ran"
    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    for value in values:
        assert value not in logged
