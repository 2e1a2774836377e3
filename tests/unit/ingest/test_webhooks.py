"""Standard Webhooks verification against the specification's own test vectors
(standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py and the Go port's
TestWebhookSign; reliability notes §3.2, test plan rows 21, 23 and 24), not only signatures this code
made itself."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.errors import MalformedWebhook, WebhookSourceError, WebhookUnauthenticated
from services.ingest.webhooks import (
    WebhookSecret,
    WebhookSource,
    format_secret,
    new_secret,
    parse_secret,
    register_source,
    sign,
    verify,
)

# The published vector: key, message id, timestamp, payload and the signature every port must produce.
SPEC_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_BAD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="  # one character changed
SPEC_OTHER_SIGNATURE = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="  # from the multi-signature test

AT_SIGNING = datetime.fromtimestamp(SPEC_TIMESTAMP, UTC)
KEY = parse_secret(SPEC_KEY)


def spec_headers(**override: str) -> dict[str, str]:
    headers = {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    headers.update(override)
    return headers


def test_signing_the_spec_vector_gives_the_published_signature() -> None:
    assert sign(KEY, webhook_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_PAYLOAD) == SPEC_SIGNATURE


def test_the_published_signature_verifies() -> None:
    signed = verify(spec_headers(), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)

    assert (signed.webhook_id, signed.timestamp) == (SPEC_MSG_ID, SPEC_TIMESTAMP)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.title(): v for k, v in spec_headers().items()}

    assert verify(headers, SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING).webhook_id == SPEC_MSG_ID


def test_the_secret_works_with_and_without_its_prefix() -> None:
    unprefixed = parse_secret(SPEC_KEY.removeprefix("whsec_"))

    assert unprefixed == KEY
    verify(spec_headers(), SPEC_PAYLOAD, keys=[unprefixed], now=AT_SIGNING)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp"])
def test_a_missing_id_or_timestamp_is_a_malformed_request(missing: str) -> None:
    headers = spec_headers()
    del headers[missing]

    with pytest.raises(MalformedWebhook) as caught:
        verify(headers, SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)
    assert caught.value.status == 400


def test_a_missing_signature_is_unauthenticated() -> None:
    headers = spec_headers()
    del headers["webhook-signature"]

    with pytest.raises(WebhookUnauthenticated) as caught:
        verify(headers, SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)
    assert caught.value.status == 401


@pytest.mark.parametrize("timestamp", ["hello", "1614265330.5", "-1614265330", "", " "])
def test_a_timestamp_that_is_not_integer_seconds_is_malformed(timestamp: str) -> None:
    with pytest.raises(MalformedWebhook):
        verify(spec_headers(**{"webhook-timestamp": timestamp}), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)


@pytest.mark.parametrize("webhook_id", ["msg.1", "has space", "x" * 257])
def test_a_webhook_id_the_signed_string_cannot_hold_is_malformed(webhook_id: str) -> None:
    with pytest.raises(MalformedWebhook):
        verify(spec_headers(**{"webhook-id": webhook_id}), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)


def test_a_signature_changed_by_one_character_is_refused() -> None:
    with pytest.raises(WebhookUnauthenticated):
        verify(
            spec_headers(**{"webhook-signature": SPEC_BAD_SIGNATURE}),
            SPEC_PAYLOAD,
            keys=[KEY],
            now=AT_SIGNING,
        )


def test_a_body_tampered_by_one_byte_is_refused() -> None:
    tampered = SPEC_PAYLOAD.replace(b"4", b"5", 1)
    assert len(tampered) == len(SPEC_PAYLOAD) and tampered != SPEC_PAYLOAD

    with pytest.raises(WebhookUnauthenticated):
        verify(spec_headers(), tampered, keys=[KEY], now=AT_SIGNING)


def test_another_id_or_timestamp_under_the_same_signature_is_refused() -> None:
    for override in ({"webhook-id": "msg_other"}, {"webhook-timestamp": str(SPEC_TIMESTAMP + 1)}):
        with pytest.raises(WebhookUnauthenticated):
            verify(spec_headers(**override), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)


def test_the_wrong_key_is_refused() -> None:
    with pytest.raises(WebhookUnauthenticated):
        verify(spec_headers(), SPEC_PAYLOAD, keys=[new_secret()], now=AT_SIGNING)
    with pytest.raises(WebhookUnauthenticated):
        verify(spec_headers(), SPEC_PAYLOAD, keys=[], now=AT_SIGNING)  # an unknown or retired source


@pytest.mark.parametrize("skew", [timedelta(seconds=301), timedelta(seconds=-301)])
def test_a_timestamp_more_than_five_minutes_off_is_refused(skew: timedelta) -> None:
    # The reference tests sign at now ∓ (5 min + 1 s); moving the clock instead keeps the published vector.
    with pytest.raises(WebhookUnauthenticated):
        verify(spec_headers(), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING + skew)


@pytest.mark.parametrize("skew", [timedelta(seconds=300), timedelta(seconds=-300)])
def test_a_timestamp_exactly_five_minutes_off_is_still_accepted(skew: timedelta) -> None:
    verify(spec_headers(), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING + skew)


def test_a_multi_signature_header_with_one_valid_v1_entry_is_accepted() -> None:
    entries = [
        SPEC_OTHER_SIGNATURE,
        SPEC_OTHER_SIGNATURE.replace("v1,", "v2,"),
        SPEC_SIGNATURE,
        SPEC_OTHER_SIGNATURE,
    ]

    verify(spec_headers(**{"webhook-signature": " ".join(entries)}), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)


def test_only_v1_entries_count() -> None:
    # The valid HMAC under another version label (v1a is ed25519, v2 does not exist) is not a v1 signature.
    entries = [SPEC_SIGNATURE.replace("v1,", "v2,"), SPEC_SIGNATURE.replace("v1,", "v1a,")]

    with pytest.raises(WebhookUnauthenticated):
        verify(
            spec_headers(**{"webhook-signature": " ".join(entries)}), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING
        )


def test_garbled_entries_are_skipped_not_fatal() -> None:
    garbled = ["v1", "v1,", "v1,!!not-base64!!", "nocomma", ","]
    header = " ".join([*garbled, SPEC_SIGNATURE])

    verify(spec_headers(**{"webhook-signature": header}), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING)
    with pytest.raises(WebhookUnauthenticated):
        verify(
            spec_headers(**{"webhook-signature": " ".join(garbled)}), SPEC_PAYLOAD, keys=[KEY], now=AT_SIGNING
        )


def test_rotation_old_and_new_signatures_are_both_accepted_while_both_keys_are_active() -> None:
    new_key = new_secret()
    source = WebhookSource(
        name="crm",
        tenant="acme",
        created_at=AT_SIGNING - timedelta(days=30),
        secrets=(
            WebhookSecret(
                key=KEY,
                created_at=AT_SIGNING - timedelta(days=30),
                expires_at=AT_SIGNING + timedelta(hours=1),
            ),
            WebhookSecret(key=new_key, created_at=AT_SIGNING),
        ),
    )
    new_sig = sign(new_key, webhook_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_PAYLOAD)

    for header in (SPEC_SIGNATURE, new_sig, f"{SPEC_SIGNATURE} {new_sig}", f"v2,abc {new_sig}"):
        verify(
            spec_headers(**{"webhook-signature": header}),
            SPEC_PAYLOAD,
            keys=source.active_keys(AT_SIGNING),
            now=AT_SIGNING,
        )

    # Once the old key has expired, only the new key's signature opens the door.
    later = AT_SIGNING + timedelta(hours=1)
    later_headers = spec_headers(**{"webhook-timestamp": str(SPEC_TIMESTAMP + 3600)})
    old_sig = sign(KEY, webhook_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP + 3600, body=SPEC_PAYLOAD)
    new_sig = sign(new_key, webhook_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP + 3600, body=SPEC_PAYLOAD)
    with pytest.raises(WebhookUnauthenticated):
        verify(
            {**later_headers, "webhook-signature": old_sig},
            SPEC_PAYLOAD,
            keys=source.active_keys(later),
            now=later,
        )
    verify(
        {**later_headers, "webhook-signature": f"{old_sig} {new_sig}"},
        SPEC_PAYLOAD,
        keys=source.active_keys(later),
        now=later,
    )


def test_a_retired_source_has_no_active_keys() -> None:
    source = register_source(name="crm", tenant="acme", key=KEY, now=AT_SIGNING - timedelta(days=1))

    assert source.active_keys(AT_SIGNING) == [KEY]
    retired = WebhookSource(
        name="crm", tenant="acme", created_at=source.created_at, retired_at=AT_SIGNING, secrets=source.secrets
    )
    assert retired.active_keys(AT_SIGNING) == []


def test_verification_is_over_the_raw_bytes_never_a_reserialised_body() -> None:
    """Row 24: a body with its own spacing and key order verifies as received; parsing and dumping
    it again (any serialiser settings) gives other bytes, which would fail verification."""
    raw = b'{ "text" : "Invoices are due in 30 days.",\n  "document_id":"d1" }'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(SPEC_TIMESTAMP)}
    headers["webhook-signature"] = sign(KEY, webhook_id="msg_1", timestamp=SPEC_TIMESTAMP, body=raw)

    verify(headers, raw, keys=[KEY], now=AT_SIGNING)
    parsed = json.loads(raw)
    for reserialised in (
        json.dumps(parsed).encode(),
        json.dumps(parsed, separators=(",", ":")).encode(),
        json.dumps(parsed, sort_keys=True).encode(),
    ):
        assert reserialised != raw
        with pytest.raises(WebhookUnauthenticated):
            verify(headers, reserialised, keys=[KEY], now=AT_SIGNING)


def test_secrets_are_whsec_base64_of_24_to_64_bytes() -> None:
    key = new_secret()
    text = format_secret(key)

    assert text.startswith("whsec_") and parse_secret(text) == key and len(key) == 32
    for bad in (
        "whsec_" + base64.b64encode(b"x" * 23).decode(),
        base64.b64encode(b"x" * 65).decode(),
        "whsec_***",
    ):
        with pytest.raises(WebhookSourceError):
            parse_secret(bad)


@pytest.mark.parametrize(
    ("name", "tenant"), [("CRM", "acme"), ("crm/x", "acme"), ("", "acme"), ("crm", "acme/evil")]
)
def test_register_refuses_bad_names_and_tenants(name: str, tenant: str) -> None:
    with pytest.raises(WebhookSourceError):
        register_source(name=name, tenant=tenant, key=KEY, now=AT_SIGNING)
