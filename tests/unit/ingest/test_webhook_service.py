"""Webhook intake over the in-memory store and a recording change log: tenancy, idempotency by
`webhook-id` (test plan row 22), rate limits, and that nothing refused reaches the log (row 21)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import Accepted, DocumentChanged, SourceKind
from services.ingest.adapters.webhooks_memory import InMemoryWebhookStore
from services.ingest.config import WebhookSettings
from services.ingest.errors import (
    MalformedWebhook,
    WebhookDocumentInvalid,
    WebhookError,
    WebhookForbidden,
    WebhookIdReused,
    WebhookRateLimited,
    WebhookStoreUnavailable,
)
from services.ingest.service import IntakeService
from services.ingest.webhook_service import WebhookIntake
from services.ingest.webhooks import new_secret, register_source, sign
from tests.unit.ingest.webhook_store_contract import SCENARIOS

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = new_secret()


class RecordingLog:
    """The ChangeLog port, remembering what was made durable."""

    def __init__(self) -> None:
        self.events: list[DocumentChanged] = []

    def append(self, event: DocumentChanged) -> bool:
        self.events.append(event)
        return True


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def store() -> InMemoryWebhookStore:
    s = InMemoryWebhookStore()
    s.create_source(register_source(name="crm", tenant="acme", key=KEY, now=T0 - timedelta(days=1)))
    return s


@pytest.fixture
def webhooks(store: InMemoryWebhookStore, log: RecordingLog, clock: Clock) -> WebhookIntake:
    return WebhookIntake(store=store, intake=IntakeService(changes=log, clock=clock), clock=clock)


def signed(body: bytes, *, webhook_id: str = "msg_1", at: datetime = T0, key: bytes = KEY) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }


def doc(**fields: Any) -> bytes:
    return json.dumps({"document_id": "d1", "text": "Invoices are due in 30 days.", **fields}).encode()


def test_a_signed_delivery_is_accepted_into_its_sources_tenant(
    webhooks: WebhookIntake, log: RecordingLog
) -> None:
    body = doc(source={"kind": "api", "name": "spoofed", "uri": "https://crm.example/d1"})

    accepted = webhooks.deliver("crm", headers=signed(body), body=body)

    (event,) = log.events
    assert (accepted.tenant, accepted.document_id, accepted.event_id) == ("acme", "d1", event.event_id)
    assert event.tenant == "acme"
    # The origin is the source that signed it, whatever the body claims; only its uri is kept.
    assert (event.source.kind, event.source.name, event.source.uri) == (
        SourceKind.WEBHOOK,
        "crm",
        "https://crm.example/d1",
    )


def test_a_body_may_name_its_own_tenant_but_no_other(webhooks: WebhookIntake, log: RecordingLog) -> None:
    own = doc(tenant="acme")
    assert webhooks.deliver("crm", headers=signed(own), body=own).tenant == "acme"

    other = doc(tenant="globex")
    with pytest.raises(WebhookForbidden):
        webhooks.deliver("crm", headers=signed(other, webhook_id="msg_2"), body=other)
    assert [e.tenant for e in log.events] == ["acme"]


def test_a_retried_delivery_is_acknowledged_not_processed_twice(
    webhooks: WebhookIntake, log: RecordingLog, clock: Clock
) -> None:
    body = doc()  # no version: it defaults to the arrival time, so a reprocessed retry would differ
    first = webhooks.deliver("crm", headers=signed(body), body=body)
    clock.now = T0 + timedelta(minutes=3)  # the sender's retry: same id and body, signed afresh

    again = webhooks.deliver("crm", headers=signed(body, at=clock.now), body=body)

    assert again == first
    assert len(log.events) == 1


def test_a_crash_between_publishing_and_recording_republishes_the_same_change(
    store: InMemoryWebhookStore, log: RecordingLog, clock: Clock
) -> None:
    """The worst moment to die: the change is durable, the delivery not yet marked answered. The retry
    publishes again — the same event id and version, which every consumer treats as a no-op."""

    class CrashOnce(InMemoryWebhookStore):
        crashed = False

        def finish_delivery(self, source: str, webhook_id: str, accepted: Accepted) -> None:
            if not self.crashed:
                self.crashed = True
                raise WebhookStoreUnavailable("the process died here")
            super().finish_delivery(source, webhook_id, accepted)

    crashing = CrashOnce()
    crashing.create_source(store.get_source("crm"))  # type: ignore[arg-type]
    webhooks = WebhookIntake(store=crashing, intake=IntakeService(changes=log, clock=clock), clock=clock)
    body = doc()
    with pytest.raises(WebhookStoreUnavailable):
        webhooks.deliver("crm", headers=signed(body), body=body)

    clock.now = T0 + timedelta(minutes=2)
    retried = webhooks.deliver("crm", headers=signed(body, at=clock.now), body=body)
    clock.now = T0 + timedelta(minutes=4)
    webhooks.deliver("crm", headers=signed(body, at=clock.now), body=body)

    first, second = log.events  # published twice (at least once), never a third time once answered
    assert (
        (first.event_id, first.version)
        == (second.event_id, second.version)
        == (retried.event_id, retried.version)
    )
    assert first.version == int(T0.timestamp() * 1000)  # the first arrival, not the retry's


def test_an_id_reused_with_another_body_is_a_conflict(webhooks: WebhookIntake, log: RecordingLog) -> None:
    body = doc()
    webhooks.deliver("crm", headers=signed(body), body=body)
    changed = doc(text="Invoices are due in 60 days.")

    with pytest.raises(WebhookIdReused) as caught:
        webhooks.deliver("crm", headers=signed(changed), body=changed)
    assert caught.value.status == 409
    assert len(log.events) == 1


def refuse(webhooks: WebhookIntake, source: str, headers: dict[str, str], body: bytes) -> int:
    with pytest.raises(WebhookError) as caught:
        webhooks.deliver(source, headers=headers, body=body)
    return caught.value.status


def test_refused_deliveries_never_reach_the_log(
    webhooks: WebhookIntake, store: InMemoryWebhookStore, log: RecordingLog
) -> None:
    body = doc()
    good = signed(body)
    cases: list[tuple[str, Callable[[], int], int]] = [
        ("forged", lambda: refuse(webhooks, "crm", signed(body, key=new_secret()), body), 401),
        ("tampered", lambda: refuse(webhooks, "crm", good, body.replace(b"30", b"90")), 401),
        ("unknown source", lambda: refuse(webhooks, "erp", good, body), 401),
        ("bad source name", lambda: refuse(webhooks, "../crm", good, body), 401),
        ("expired", lambda: refuse(webhooks, "crm", signed(body, at=T0 - timedelta(seconds=301)), body), 401),
        ("future", lambda: refuse(webhooks, "crm", signed(body, at=T0 + timedelta(seconds=301)), body), 401),
        (
            "no id",
            lambda: refuse(webhooks, "crm", {k: v for k, v in good.items() if k != "webhook-id"}, body),
            400,
        ),
        ("bad timestamp", lambda: refuse(webhooks, "crm", {**good, "webhook-timestamp": "hello"}, body), 400),
        ("not json", lambda: refuse(webhooks, "crm", signed(b"text=1"), b"text=1"), 400),
        ("not an object", lambda: refuse(webhooks, "crm", signed(b"[1]"), b"[1]"), 400),
        (
            "invalid document",
            lambda: refuse(webhooks, "crm", signed(b'{"text": "x"}'), b'{"text": "x"}'),
            422,
        ),
    ]
    for name, attempt, status in cases:
        assert attempt() == status, name
    store.retire_source("crm", at=T0)
    assert refuse(webhooks, "crm", good, body) == 401
    assert log.events == []


def test_an_invalid_document_is_described_without_echoing_its_values(webhooks: WebhookIntake) -> None:
    body = doc(text=None, op="upsert", acl=["x" * 200], title="Jane Roe 555-0100")

    with pytest.raises(WebhookDocumentInvalid) as caught:
        webhooks.deliver("crm", headers=signed(body), body=body)
    assert "acl" in str(caught.value) and "x" * 200 not in str(caught.value)
    assert "Jane Roe" not in str(caught.value)


def test_a_missing_id_is_400_even_for_an_unknown_source(webhooks: WebhookIntake) -> None:
    with pytest.raises(MalformedWebhook):
        webhooks.deliver("erp", headers={"webhook-timestamp": str(int(T0.timestamp()))}, body=b"{}")


def test_a_source_over_its_rate_is_told_when_to_retry(
    store: InMemoryWebhookStore, log: RecordingLog, clock: Clock
) -> None:
    settings = WebhookSettings(rate_per_second=0.5, rate_burst=2)
    webhooks = WebhookIntake(
        store=store, intake=IntakeService(changes=log, clock=clock), clock=clock, settings=settings
    )
    store.create_source(register_source(name="erp", tenant="acme", key=KEY, now=T0))
    bodies = [doc(document_id=f"d{i}") for i in range(3)]

    # Forgeries do not spend the source's budget: only genuine deliveries do.
    for _ in range(5):
        refuse(webhooks, "crm", signed(bodies[0], key=new_secret()), bodies[0])
    webhooks.deliver("crm", headers=signed(bodies[0], webhook_id="a"), body=bodies[0])
    webhooks.deliver("crm", headers=signed(bodies[1], webhook_id="b"), body=bodies[1])
    with pytest.raises(WebhookRateLimited) as caught:
        webhooks.deliver("crm", headers=signed(bodies[2], webhook_id="c"), body=bodies[2])

    assert caught.value.status == 429 and caught.value.retry_after >= 1
    webhooks.deliver("erp", headers=signed(bodies[2], webhook_id="c"), body=bodies[2])  # per source
    assert len(log.events) == 3


def test_old_delivery_ids_are_pruned_after_the_retention(
    webhooks: WebhookIntake, store: InMemoryWebhookStore, clock: Clock
) -> None:
    body = doc()
    webhooks.deliver("crm", headers=signed(body), body=body)
    retention = timedelta(seconds=webhooks.settings.delivery_retention_s)

    clock.now = T0 + retention + timedelta(seconds=webhooks.settings.prune_interval_s + 1)
    other = doc(document_id="d2")
    webhooks.deliver("crm", headers=signed(other, webhook_id="msg_2", at=clock.now), body=other)

    fresh = store.begin_delivery("crm", "msg_1", body_sha256=b"\0" * 32, at=clock.now)
    assert fresh.received_at == clock.now and fresh.accepted is None  # forgotten
    assert store.begin_delivery("crm", "msg_2", body_sha256=b"\0" * 32, at=clock.now).accepted is not None


def test_retention_shorter_than_the_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        WebhookSettings(tolerance_s=900, delivery_retention_s=600)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_in_memory_webhook_store(scenario: Callable[[InMemoryWebhookStore], None]) -> None:
    scenario(InMemoryWebhookStore())
