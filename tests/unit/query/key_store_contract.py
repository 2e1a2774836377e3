"""Behaviour every KeyStore must show; run on the in-memory fake and on Postgres."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from headwater.kernel.ratelimit import RateLimit
from services.query.access import authenticate, issue_key
from services.query.errors import KeyStoreError, Unauthenticated
from services.query.ports import KeyStore

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def a_stored_key_reads_back_whole(store: KeyStore) -> None:
    key, _ = issue_key(
        tenant="acme", acl_groups=["hr", "finance"], now=T0, rate_limit=RateLimit(2.5, 7), label="billing app"
    )
    store.add(key)

    assert store.get(key.key_id) == key
    assert store.get("0" * 16) is None


def a_key_without_limit_or_groups_reads_back_whole(store: KeyStore) -> None:
    key, _ = issue_key(tenant="acme", now=T0)
    store.add(key)

    assert store.get(key.key_id) == key
    assert key.acl_groups == () and key.rate_limit is None


def a_token_authenticates_against_the_store(store: KeyStore) -> None:
    key, token = issue_key(tenant="acme", acl_groups=["hr"], now=T0)
    store.add(key)

    caller = authenticate(token, keys=store)

    assert (caller.key_id, caller.tenant, caller.acl_groups) == (key.key_id, "acme", ("hr",))


def a_taken_key_id_is_refused(store: KeyStore) -> None:
    key, _ = issue_key(tenant="acme", now=T0)
    store.add(key)
    other, _ = issue_key(tenant="globex", now=T0)

    with pytest.raises(KeyStoreError):
        store.add(dataclasses.replace(other, key_id=key.key_id))
    stored = store.get(key.key_id)
    assert stored is not None and stored.tenant == "acme"


def revoking_keeps_the_first_time_and_locks_the_key_out(store: KeyStore) -> None:
    key, token = issue_key(tenant="acme", now=T0)
    store.add(key)

    first = store.revoke(key.key_id, at=T0 + timedelta(hours=1))
    again = store.revoke(key.key_id, at=T0 + timedelta(hours=2))

    assert first is not None and first.revoked_at == T0 + timedelta(hours=1)
    assert again is not None and again.revoked_at == T0 + timedelta(hours=1)
    assert store.revoke("f" * 16, at=T0) is None
    with pytest.raises(Unauthenticated):
        authenticate(token, keys=store)


def listing_filters_by_tenant_oldest_first(store: KeyStore) -> None:
    late, _ = issue_key(tenant="acme", now=T0 + timedelta(minutes=5))
    early, _ = issue_key(tenant="acme", now=T0)
    other, _ = issue_key(tenant="globex", now=T0)
    for key in (late, early, other):
        store.add(key)

    assert [k.key_id for k in store.list_keys(tenant="acme")] == [early.key_id, late.key_id]
    assert {k.key_id for k in store.list_keys()} == {late.key_id, early.key_id, other.key_id}
    assert store.list_keys(tenant="initech") == []


SCENARIOS: list[Callable[[KeyStore], None]] = [
    a_stored_key_reads_back_whole,
    a_key_without_limit_or_groups_reads_back_whole,
    a_token_authenticates_against_the_store,
    a_taken_key_id_is_refused,
    revoking_keeps_the_first_time_and_locks_the_key_out,
    listing_filters_by_tenant_oldest_first,
]
