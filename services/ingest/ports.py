"""Ports of the ingest service."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from schemas import Accepted, DocumentChanged
from services.ingest.webhooks import Delivery, WebhookSecret, WebhookSource


class ChangeLog(Protocol):
    """Where accepted changes are made durable: the embedded journal, or a Kafka topic."""

    def append(self, event: DocumentChanged) -> bool:
        """Store durably before returning; False if this exact event was already stored."""
        ...


class WebhookStore(Protocol):
    """Webhook sources with their secrets, and the deliveries seen (the `webhook-id` idempotency keys)."""

    def create_source(self, source: WebhookSource) -> None:
        """Register a source with its secrets; `WebhookSourceError` when the name is taken."""

    def get_source(self, name: str) -> WebhookSource | None:
        """The source with every secret it ever had (expired ones too), retired or not."""

    def list_sources(self) -> list[WebhookSource]:
        """Every source, by name."""

    def add_secret(
        self, name: str, secret: WebhookSecret, *, others_expire_at: datetime
    ) -> WebhookSource | None:
        """Add a secret; the source's other secrets stop working at `others_expire_at` (or earlier if
        they already expire earlier). None when there is no such source."""

    def retire_source(self, name: str, *, at: datetime) -> WebhookSource | None:
        """Refuse the source's deliveries from `at` on; retiring twice keeps the first time."""

    def begin_delivery(self, source: str, webhook_id: str, *, body_sha256: bytes, at: datetime) -> Delivery:
        """Remember a delivery if it is new and return what is remembered of it (first sight wins)."""

    def finish_delivery(self, source: str, webhook_id: str, accepted: Accepted) -> None:
        """Record that the delivery's change is durable, so a retry is acknowledged, not processed."""

    def prune_deliveries(self, *, before: datetime) -> int:
        """Forget deliveries first seen before `before`; how many were forgotten."""
