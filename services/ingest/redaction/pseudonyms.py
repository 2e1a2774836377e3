"""Deterministic per-tenant pseudonyms: the same value maps to the same placeholder within a tenant."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from services.ingest.redaction.policy import EMAIL_ADDRESS, PERSON, STREET_ADDRESS

DIGEST_HEX_CHARS = 8
_KEY_CONTEXT = b"headwater/redaction/tenant-key/v1\x00"
_HONORIFIC = re.compile(r"^(?:mr|mrs|ms|miss|mx|dr|prof|sir|madam|mme|mlle|herr|frau)\.?\s+", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")


def tenant_key(*, secret: bytes, tenant: str) -> bytes:
    """Key of one tenant, so pseudonyms cannot be joined across tenants."""
    return hmac.new(secret, _KEY_CONTEXT + tenant.encode(), hashlib.sha256).digest()


def normalise(*, entity: str, value: str) -> str:
    """Canonical form of a value, so layouts of one identifier share a pseudonym."""
    folded = unicodedata.normalize("NFKC", value).casefold().strip()
    if entity == PERSON:
        return _SPACES.sub(" ", _NON_ALNUM.sub(" ", _HONORIFIC.sub("", folded))).strip()
    if entity in (EMAIL_ADDRESS, STREET_ADDRESS):
        return _SPACES.sub(" ", folded)
    # Identifiers (phones, cards, IBANs, SSNs, IPs) are the same whatever the separators.
    return _NON_ALNUM.sub("", folded)


def placeholder(*, key: bytes, entity: str, value: str) -> str:
    """Placeholder such as `<PERSON_3f9a2c1b>`; it carries a keyed digest, never the value."""
    message = f"{entity}\x00{normalise(entity=entity, value=value)}".encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()[:DIGEST_HEX_CHARS]
    return f"<{entity}_{digest}>"
