"""API keys, request scoping and per-key rate limits, on the in-memory key store and a fake clock."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from headwater.kernel.ratelimit import RateLimit, RateLimiter, TokenBucket, retry_after_seconds
from schemas import SearchRequest
from services.query.access import (
    AccessControl,
    Caller,
    authenticate,
    issue_key,
    parse_token,
    scope_request,
)
from services.query.adapters.keys_memory import InMemoryKeyStore
from services.query.config import AccessSettings
from services.query.errors import Forbidden, RateLimited, Unauthenticated
from services.query.ports import KeyStore
from tests.unit.query.key_store_contract import SCENARIOS

NOW = datetime(2025, 3, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_memory_key_store(scenario: Callable[[KeyStore], None]) -> None:
    scenario(InMemoryKeyStore())


# -- keys ---------------------------------------------------------------------------------------


def test_a_key_is_a_prefixed_id_and_a_256_bit_secret_of_which_only_a_hash_is_kept() -> None:
    key, token = issue_key(tenant="acme", acl_groups=["hr", "finance", "hr"], now=NOW)

    parsed = parse_token(token)
    assert parsed is not None
    key_id, secret = parsed
    assert token == f"hw_{key_id}_{secret}" and key_id == key.key_id
    assert len(secret) == 43  # 32 random bytes, base64url without padding
    assert key.secret_sha256 == hashlib.sha256(secret.encode()).digest()
    assert secret not in repr(key) and key.secret_sha256.hex() not in repr(key)
    assert key.acl_groups == ("finance", "hr")  # deduplicated, in a stable order
    other, other_token = issue_key(tenant="acme", now=NOW)
    assert other.key_id != key.key_id and other_token != token


@pytest.mark.parametrize(
    ("tenant", "groups"),
    [("acme/x", []), ("", []), ("acme", [""]), ("acme", ["g" * 129]), ("acme", [f"g{i}" for i in range(65)])],
)
def test_keys_for_invalid_tenants_or_groups_are_not_issued(tenant: str, groups: list[str]) -> None:
    with pytest.raises(ValueError, match=r"tenant|group"):
        issue_key(tenant=tenant, acl_groups=groups, now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "hw_",
        "Bearer hw_0123456789abcdef_" + "a" * 43,
        "xx_0123456789abcdef_" + "a" * 43,
        "hw_0123456789ABCDEF_" + "a" * 43,
        "hw_0123456789abcdef_" + "a" * 42,
        "hw_0123456789abcdef_" + "a" * 42 + "!",
    ],
)
def test_malformed_tokens_do_not_parse(token: str) -> None:
    assert parse_token(token) is None


def test_authentication_refuses_missing_unknown_forged_and_revoked_keys() -> None:
    store = InMemoryKeyStore()
    key, token = issue_key(tenant="acme", acl_groups=["hr"], now=NOW)
    store.add(key)
    _, unknown = issue_key(tenant="acme", now=NOW)  # well formed, never stored
    forged = f"hw_{key.key_id}_{parse_token(unknown)[1]}"  # type: ignore[index]  # right id, wrong secret

    assert authenticate(token, keys=store) == Caller(key_id=key.key_id, tenant="acme", acl_groups=("hr",))
    for bad in (None, "", "not-a-key", unknown, forged):
        with pytest.raises(Unauthenticated):
            authenticate(bad, keys=store)
    store.revoke(key.key_id, at=NOW)
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        authenticate(token, keys=store)


# -- scoping ------------------------------------------------------------------------------------

CALLER = Caller(key_id="0123456789abcdef", tenant="acme", acl_groups=("finance", "hr"))


def test_the_search_runs_with_the_keys_tenant_and_groups() -> None:
    scoped = scope_request(SearchRequest(query="q", tenant="acme"), CALLER)

    assert scoped.tenant == "acme" and scoped.acl == ["finance", "hr"]


def test_a_key_with_no_groups_reads_public_documents_only() -> None:
    caller = dataclasses.replace(CALLER, acl_groups=())

    assert scope_request(SearchRequest(query="q", tenant="acme"), caller).acl == []


def test_another_tenant_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        scope_request(SearchRequest(query="q", tenant="globex"), CALLER)


def test_acl_may_narrow_the_keys_groups_but_never_widen_them() -> None:
    assert scope_request(SearchRequest(query="q", tenant="acme", acl=["hr"]), CALLER).acl == ["hr"]
    assert scope_request(SearchRequest(query="q", tenant="acme", acl=[]), CALLER).acl == []
    for wider in (["admin"], ["hr", "admin"]):
        with pytest.raises(Forbidden):
            scope_request(SearchRequest(query="q", tenant="acme", acl=wider), CALLER)


def test_without_access_control_the_body_is_trusted_as_sent() -> None:
    request = SearchRequest(query="q", tenant="globex", acl=None)

    assert scope_request(request, None) is request


def test_disabling_auth_is_refused_outside_local_and_test() -> None:
    disabled = AccessSettings(auth="disabled")

    assert disabled.auth_required(environment="test") is False
    assert disabled.auth_required(environment="local") is False
    assert AccessSettings().auth_required(environment="production") is True
    with pytest.raises(ValueError, match="refused"):
        disabled.auth_required(environment="production")


# -- rate limiting ------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_one_request_per_refill() -> None:
    bucket = TokenBucket(RateLimit(per_second=2.0, burst=3), tokens=3.0, updated=0.0)

    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token takes 1/2 s at 2/s
    assert bucket.take(0.25) == pytest.approx(0.25)  # a refused request spends nothing
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0  # a long pause refills to the burst, not beyond
    assert bucket.tokens == pytest.approx(2.0)


def test_a_clock_that_steps_back_mints_no_tokens() -> None:
    bucket = TokenBucket(RateLimit(per_second=1.0, burst=1), tokens=0.0, updated=10.0)

    assert bucket.take(5.0) > 0
    assert bucket.take(5.5) == pytest.approx(0.5)


def test_each_key_has_its_own_bucket_and_may_carry_its_own_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(default=RateLimit(per_second=1.0, burst=2), clock=clock)

    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(1.0)
    assert limiter.acquire("b") == 0.0  # another key is not slowed by a's traffic
    generous = RateLimit(per_second=10.0, burst=5)
    assert [limiter.acquire("c", generous) for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("c", generous) == pytest.approx(0.1)
    clock.advance(1.0)
    assert limiter.acquire("a") == 0.0


def test_a_lowered_limit_takes_effect_without_refilling() -> None:
    clock = FakeClock()
    limiter = RateLimiter(default=RateLimit(per_second=1.0, burst=10), clock=clock)
    limiter.acquire("a")

    tight = RateLimit(per_second=1.0, burst=1)
    assert limiter.acquire("a", tight) == 0.0
    assert limiter.acquire("a", tight) == pytest.approx(1.0)


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_after_seconds(w) for w in (0.001, 0.5, 1.0, 1.01, 59.2)] == [1, 1, 1, 2, 60]


def test_rate_limits_are_validated() -> None:
    for per_second, burst in ((0.0, 1), (-1.0, 1), (float("inf"), 1), (1.0, 0)):
        with pytest.raises(ValueError, match="rate limit"):
            RateLimit(per_second, burst)
    assert RateLimit.of(0.2) == RateLimit(0.2, 1)
    assert RateLimit.of(5) == RateLimit(5, 10)


def test_admission_authenticates_then_spends_the_keys_budget() -> None:
    store = InMemoryKeyStore()
    key, token = issue_key(tenant="acme", now=NOW, rate_limit=RateLimit(per_second=0.5, burst=2))
    store.add(key)
    clock = FakeClock()
    access = AccessControl(keys=store, limiter=RateLimiter(default=RateLimit(100.0, 100), clock=clock))

    assert access.admit(token) == Caller(key.key_id, "acme", (), RateLimit(0.5, 2))
    access.admit(token)
    with pytest.raises(RateLimited) as refused:
        access.admit(token)
    assert refused.value.retry_after == 2 and refused.value.headers() == {"Retry-After": "2"}
    with pytest.raises(Unauthenticated):  # a bad key is refused before it can spend anything
        access.admit("hw_nonsense")
    clock.advance(2.0)
    assert access.admit(token) is not None


def test_admission_is_open_only_when_access_control_is_off() -> None:
    access = AccessControl(keys=None, limiter=RateLimiter(default=RateLimit(1.0, 1)))

    assert not access.enabled
    assert access.admit(None) is None
