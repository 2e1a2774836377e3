"""Standard Webhooks (v1.0.0) signatures: symmetric `v1`, HMAC-SHA256 over `{id}.{timestamp}.{body}`.

Pure: no I/O, the time is passed in. Verification works on the raw body bytes as received, never on a
parsed and re-serialised body (the spec calls that "a very common failure mode"). A header may carry
several space-separated `version,base64` signatures and a source may hold several secrets, so a
sender can rotate its secret without a gap: a delivery is genuine if any `v1` signature matches any
of the source's active secrets. Other versions (`v1a` ed25519, future ones) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from schemas import Accepted
from schemas.common import TenantId
from services.ingest.errors import MalformedWebhook, WebhookSourceError, WebhookUnauthenticated

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the spec gives secrets, not a secret
TOLERANCE_S = 300  # the reference libraries' ±5 minutes, both too old and too new
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64  # the spec's range for symmetric secrets
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # it is a path segment of the webhook URL
_TENANT = TypeAdapter(TenantId)
_WEBHOOK_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,256}$")  # printable ASCII without "." (the separator)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSecret:
    """One signing secret of a source; several are active while a rotation overlaps."""

    key: bytes = field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None  # None: until a rotation sets it

    @property
    def secret_id(self) -> str:
        """A fingerprint that names the secret in listings without revealing it."""
        return hashlib.sha256(self.key).hexdigest()[:12]

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSource:
    """A registered sender: its deliveries go to `tenant` only, signed with one of `secrets`."""

    name: str
    tenant: str
    created_at: datetime
    retired_at: datetime | None = None
    secrets: tuple[WebhookSecret, ...] = ()

    def active_keys(self, now: datetime) -> list[bytes]:
        if self.retired_at is not None and self.retired_at <= now:
            return []
        return [s.key for s in self.secrets if s.active(now)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What is remembered of a `webhook-id`: when it first arrived, its body's digest, and the answer
    once its change is durable (None while it is not)."""

    received_at: datetime
    body_sha256: bytes
    accepted: Accepted | None = None


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The three Standard Webhooks headers, parsed."""

    webhook_id: str
    timestamp: int
    signatures: tuple[str, ...]  # the raw `version,base64` entries


def register_source(*, name: str, tenant: str, key: bytes, now: datetime) -> WebhookSource:
    """A new source with one secret; `WebhookSourceError` for a bad name or tenant."""
    if not SOURCE_NAME.match(name):
        raise WebhookSourceError("a source name is 1 to 64 of a-z, 0-9, '_' and '-', starting alphanumeric")
    try:
        _TENANT.validate_python(tenant)
    except ValidationError:
        raise WebhookSourceError("a tenant is 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'") from None
    return WebhookSource(
        name=name, tenant=tenant, created_at=now, secrets=(WebhookSecret(key=key, created_at=now),)
    )


def new_secret() -> bytes:
    """32 random bytes: inside the spec's 24–64."""
    return secrets.token_bytes(32)


def format_secret(key: bytes) -> str:
    """The form users copy: `whsec_` + base64."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def parse_secret(text: str) -> bytes:
    """The key bytes of a `whsec_…` secret (the prefix is optional, as in the reference libraries)."""
    body = text.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookSourceError("a webhook secret is base64, optionally prefixed with whsec_") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise WebhookSourceError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def sign(key: bytes, *, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of a delivery, as a sender computes it."""
    return "v1," + base64.b64encode(_mac(key, webhook_id, timestamp, body)).decode()


def _mac(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The signed headers; `MalformedWebhook` (400) or `WebhookUnauthenticated` (401, no signature)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id", "").strip()
    timestamp = lowered.get("webhook-timestamp", "").strip()
    signature = lowered.get("webhook-signature", "").strip()
    if not webhook_id:
        raise MalformedWebhook("the webhook-id header is missing")
    if not _WEBHOOK_ID.match(webhook_id):
        raise MalformedWebhook("webhook-id must be 1 to 256 printable ASCII characters without '.'")
    if not timestamp:
        raise MalformedWebhook("the webhook-timestamp header is missing")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise MalformedWebhook("webhook-timestamp must be integer Unix seconds")
    if not signature:
        raise WebhookUnauthenticated("the webhook-signature header is missing")
    return SignedHeaders(webhook_id, int(timestamp), tuple(signature.split()))


def check_timestamp(timestamp: int, *, now: datetime, tolerance_s: int = TOLERANCE_S) -> None:
    """`WebhookUnauthenticated` unless the attempt was signed within ±tolerance of now (replay defence)."""
    skew = timestamp - now.timestamp()
    if skew < -tolerance_s:
        raise WebhookUnauthenticated(f"webhook-timestamp is more than {tolerance_s} s old")
    if skew > tolerance_s:
        raise WebhookUnauthenticated(f"webhook-timestamp is more than {tolerance_s} s in the future")


def signature_matches(signed: SignedHeaders, body: bytes, keys: Iterable[bytes]) -> bool:
    """Whether any `v1` entry is the HMAC of this delivery under any key; compared in constant time."""
    offered: list[bytes] = []
    for entry in signed.signatures:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # v1a (ed25519) and unknown versions are not ours to check
        try:
            offered.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue  # a garbled entry is just one more signature that does not match
    matched = False
    for key in keys:
        expected = _mac(key, signed.webhook_id, signed.timestamp, body)
        for candidate in offered:
            # No early exit: the time taken does not tell which key or entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def verify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: Iterable[bytes],
    now: datetime,
    tolerance_s: int = TOLERANCE_S,
) -> SignedHeaders:
    """The delivery's signed headers once its signature and timestamp check out; otherwise a 400 or
    401 error, the way the reference libraries refuse."""
    signed = parse_headers(headers)
    check_timestamp(signed.timestamp, now=now, tolerance_s=tolerance_s)
    if not signature_matches(signed, body, keys):
        raise WebhookUnauthenticated("no valid signature for this source")
    return signed
