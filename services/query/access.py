"""API keys and the callers they authenticate: which tenant a caller searches, with which ACL groups.

A key reads `hw_<key_id>_<secret>`. Only the SHA-256 of the secret is stored. The secret is 256 random
bits, so a slow password hash (bcrypt, Argon2) would add nothing: those slow down guessing of
low-entropy passwords, and no one can enumerate 2^256 secrets, fast hash or not. A fast hash keeps
authentication to one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from headwater.kernel.ratelimit import RateLimit, RateLimiter, retry_after_seconds
from schemas import SearchRequest
from schemas.common import AclGroup, TenantId
from schemas.search import MAX_ACL_GROUPS
from services.query.errors import Forbidden, RateLimited, Unauthenticated
from services.query.ports import ApiKey, KeyStore

KEY_PREFIX = "hw"
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32): 32 bytes in unpadded base64url
_TENANT = TypeAdapter(TenantId)
_GROUP = TypeAdapter(AclGroup)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is searching, as established by their key."""

    key_id: str
    tenant: str
    acl_groups: tuple[str, ...]
    rate_limit: RateLimit | None = None


def issue_key(
    *,
    tenant: str,
    acl_groups: list[str] | tuple[str, ...] = (),
    now: datetime,
    rate_limit: RateLimit | None = None,
    label: str = "",
) -> tuple[ApiKey, str]:
    """A new key record and its token; the token is shown once and cannot be recovered from the record."""
    try:
        _TENANT.validate_python(tenant)
        groups = tuple(sorted({_GROUP.validate_python(g) for g in acl_groups}))
    except ValidationError as exc:
        raise ValueError(f"invalid tenant or ACL group: {exc.errors()[0]['msg']}") from None
    if len(groups) > MAX_ACL_GROUPS:
        raise ValueError(f"a key holds at most {MAX_ACL_GROUPS} ACL groups")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=key_id,
        tenant=tenant,
        acl_groups=groups,
        secret_sha256=_digest(secret),
        created_at=now,
        rate_limit=rate_limit,
        label=label,
    )
    return record, f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")  # the id is hex, so the first "_" after it ends it
    if prefix != KEY_PREFIX or not _KEY_ID.match(key_id) or not _SECRET.match(secret):
        return None
    return key_id, secret


def authenticate(token: str | None, *, keys: KeyStore) -> Caller:
    """The caller a token stands for; `Unauthenticated` when it is missing, malformed, unknown or revoked."""
    if not token:
        raise Unauthenticated("send an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    parsed = parse_token(token)
    key = keys.get(parsed[0]) if parsed else None
    # One answer for every bad key, so a caller learns nothing about which key ids exist.
    if parsed is None or key is None or not key.active:
        raise Unauthenticated("invalid or revoked API key")
    if not hmac.compare_digest(key.secret_sha256, _digest(parsed[1])):
        raise Unauthenticated("invalid or revoked API key")
    return Caller(key_id=key.key_id, tenant=key.tenant, acl_groups=key.acl_groups, rate_limit=key.rate_limit)


def scope_request(request: SearchRequest, caller: Caller | None) -> SearchRequest:
    """The request the service runs: the key's tenant, and ACL groups no wider than the key's.

    `caller` is None only when access control is disabled (local and test environments), and then the
    body's tenant and ACL are trusted as sent.
    """
    authorize_tenant(caller, request.tenant)
    if caller is None:
        return request
    if request.acl is None:
        return request.model_copy(update={"acl": list(caller.acl_groups)})
    if not set(request.acl) <= set(caller.acl_groups):
        raise Forbidden("`acl` may only narrow the key's ACL groups, never add to them")
    return request


def authorize_tenant(caller: Caller | None, tenant: str) -> None:
    """`Forbidden` unless the caller's key belongs to `tenant` (any tenant when access control is off)."""
    if caller is not None and caller.tenant != tenant:
        raise Forbidden("this API key reads its own tenant only")


@dataclass
class AccessControl:
    """What the search route asks before running a query: who is calling, and may they call now."""

    keys: KeyStore | None  # None: access control disabled (local and test environments only)
    limiter: RateLimiter

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def admit(self, token: str | None) -> Caller | None:
        """The authenticated caller, once its key's rate limit allows one more request."""
        if self.keys is None:
            return None
        caller = authenticate(token, keys=self.keys)
        wait = self.limiter.acquire(caller.key_id, caller.rate_limit)
        if wait > 0:
            raise RateLimited("this API key's rate limit is spent", retry_after=retry_after_seconds(wait))
        return caller


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
