"""Behaviour every WebhookStore must show; run on the in-memory fake and on Postgres."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from schemas import Accepted
from services.ingest.errors import WebhookSourceError
from services.ingest.ports import WebhookStore
from services.ingest.webhooks import WebhookSecret, new_secret, register_source

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DIGEST = hashlib.sha256(b"body").digest()


def a_source_reads_back_whole(store: WebhookStore) -> None:
    source = register_source(name="crm", tenant="acme", key=new_secret(), now=T0)
    store.create_source(source)

    assert store.get_source("crm") == source
    assert store.get_source("erp") is None


def a_taken_name_is_refused(store: WebhookStore) -> None:
    store.create_source(register_source(name="crm", tenant="acme", key=new_secret(), now=T0))

    with pytest.raises(WebhookSourceError):
        store.create_source(register_source(name="crm", tenant="globex", key=new_secret(), now=T0))
    stored = store.get_source("crm")
    assert stored is not None and stored.tenant == "acme"


def rotation_keeps_old_secrets_until_their_expiry(store: WebhookStore) -> None:
    first = new_secret()
    store.create_source(register_source(name="crm", tenant="acme", key=first, now=T0))
    second, third = new_secret(), new_secret()

    rotated = store.add_secret(
        "crm",
        WebhookSecret(key=second, created_at=T0 + timedelta(hours=1)),
        others_expire_at=T0 + timedelta(hours=25),
    )
    assert rotated is not None
    assert rotated.active_keys(T0 + timedelta(hours=2)) == [first, second]
    assert rotated.active_keys(T0 + timedelta(hours=25)) == [second]

    # A second rotation never extends an expiry already set, and can end the overlap at once.
    again = store.add_secret(
        "crm",
        WebhookSecret(key=third, created_at=T0 + timedelta(hours=3)),
        others_expire_at=T0 + timedelta(hours=3),
    )
    assert again is not None and store.get_source("crm") == again
    assert [s.expires_at for s in again.secrets] == [T0 + timedelta(hours=3), T0 + timedelta(hours=3), None]
    assert again.active_keys(T0 + timedelta(hours=3)) == [third]
    assert store.add_secret("erp", WebhookSecret(key=third, created_at=T0), others_expire_at=T0) is None


def retiring_keeps_the_first_time_and_shuts_the_source(store: WebhookStore) -> None:
    store.create_source(register_source(name="crm", tenant="acme", key=new_secret(), now=T0))

    first = store.retire_source("crm", at=T0 + timedelta(hours=1))
    again = store.retire_source("crm", at=T0 + timedelta(hours=2))

    assert first is not None and first.retired_at == T0 + timedelta(hours=1)
    assert again is not None and again.retired_at == T0 + timedelta(hours=1)
    assert again.active_keys(T0 + timedelta(hours=1)) == []
    assert store.retire_source("erp", at=T0) is None


def listing_is_by_name(store: WebhookStore) -> None:
    for name in ("erp", "crm", "wiki"):
        store.create_source(register_source(name=name, tenant="acme", key=new_secret(), now=T0))

    assert [s.name for s in store.list_sources()] == ["crm", "erp", "wiki"]
    assert all(len(s.secrets) == 1 for s in store.list_sources())


def the_first_sight_of_a_delivery_wins(store: WebhookStore) -> None:
    first = store.begin_delivery("crm", "msg_1", body_sha256=DIGEST, at=T0)
    retry = store.begin_delivery("crm", "msg_1", body_sha256=b"\x01" * 32, at=T0 + timedelta(minutes=1))
    other_source = store.begin_delivery("erp", "msg_1", body_sha256=DIGEST, at=T0 + timedelta(minutes=2))

    assert (first.received_at, first.body_sha256, first.accepted) == (T0, DIGEST, None)
    assert (retry.received_at, retry.body_sha256, retry.accepted) == (T0, DIGEST, None)
    assert other_source.received_at == T0 + timedelta(minutes=2)  # ids are per source


def a_finished_delivery_returns_its_answer(store: WebhookStore) -> None:
    store.begin_delivery("crm", "msg_1", body_sha256=DIGEST, at=T0)
    answer = Accepted(event_id="e" * 32, tenant="acme", document_id="d1", version=7, accepted_at=T0)

    store.finish_delivery("crm", "msg_1", answer)
    store.finish_delivery("crm", "msg_1", answer)  # idempotent

    assert (
        store.begin_delivery("crm", "msg_1", body_sha256=DIGEST, at=T0 + timedelta(minutes=1)).accepted
        == answer
    )


def pruning_forgets_only_old_deliveries(store: WebhookStore) -> None:
    store.begin_delivery("crm", "old", body_sha256=DIGEST, at=T0)
    store.begin_delivery("crm", "new", body_sha256=DIGEST, at=T0 + timedelta(days=2))

    assert store.prune_deliveries(before=T0 + timedelta(days=1)) == 1
    assert store.begin_delivery(
        "crm", "new", body_sha256=DIGEST, at=T0 + timedelta(days=3)
    ).received_at == T0 + timedelta(days=2)
    assert store.begin_delivery(
        "crm", "old", body_sha256=DIGEST, at=T0 + timedelta(days=3)
    ).received_at == T0 + timedelta(days=3)


SCENARIOS: list[Callable[[WebhookStore], None]] = [
    a_source_reads_back_whole,
    a_taken_name_is_refused,
    rotation_keeps_old_secrets_until_their_expiry,
    retiring_keeps_the_first_time_and_shuts_the_source,
    listing_is_by_name,
    the_first_sight_of_a_delivery_wins,
    a_finished_delivery_returns_its_answer,
    pruning_forgets_only_old_deliveries,
]
