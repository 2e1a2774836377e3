"""WebhookStore in dicts: for tests and throwaway servers."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime

from schemas import Accepted
from services.ingest.errors import WebhookSourceError
from services.ingest.webhooks import Delivery, WebhookSecret, WebhookSource


class InMemoryWebhookStore:
    def __init__(self) -> None:
        self._sources: dict[str, WebhookSource] = {}
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._lock = threading.Lock()

    def create_source(self, source: WebhookSource) -> None:
        with self._lock:
            if source.name in self._sources:
                raise WebhookSourceError(f"webhook source {source.name} exists")
            self._sources[source.name] = source

    def get_source(self, name: str) -> WebhookSource | None:
        return self._sources.get(name)

    def list_sources(self) -> list[WebhookSource]:
        return sorted(self._sources.values(), key=lambda s: s.name)

    def add_secret(
        self, name: str, secret: WebhookSecret, *, others_expire_at: datetime
    ) -> WebhookSource | None:
        with self._lock:
            source = self._sources.get(name)
            if source is None:
                return None
            kept = tuple(
                s
                if s.expires_at is not None and s.expires_at <= others_expire_at
                else dataclasses.replace(s, expires_at=others_expire_at)
                for s in source.secrets
            )
            self._sources[name] = dataclasses.replace(source, secrets=(*kept, secret))
            return self._sources[name]

    def retire_source(self, name: str, *, at: datetime) -> WebhookSource | None:
        with self._lock:
            source = self._sources.get(name)
            if source is None or source.retired_at is not None:
                return source
            self._sources[name] = dataclasses.replace(source, retired_at=at)
            return self._sources[name]

    def begin_delivery(self, source: str, webhook_id: str, *, body_sha256: bytes, at: datetime) -> Delivery:
        with self._lock:
            return self._deliveries.setdefault(
                (source, webhook_id), Delivery(received_at=at, body_sha256=body_sha256)
            )

    def finish_delivery(self, source: str, webhook_id: str, accepted: Accepted) -> None:
        with self._lock:
            key = (source, webhook_id)
            if key in self._deliveries:
                self._deliveries[key] = dataclasses.replace(self._deliveries[key], accepted=accepted)

    def prune_deliveries(self, *, before: datetime) -> int:
        with self._lock:
            old = [key for key, d in self._deliveries.items() if d.received_at < before]
            for key in old:
                del self._deliveries[key]
            return len(old)
