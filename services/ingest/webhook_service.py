"""Webhook intake: verify a signed delivery, then accept its document exactly as `POST /v1/documents`
would, at most once per `webhook-id`.

Order of one delivery, and why:
1. signature and timestamp (`webhooks.verify`) against the source's active secrets;
2. the source's rate limit — spent only by genuine deliveries, so a forger cannot throttle a sender;
3. the body as an `IngestDocument`, confined to the source's tenant;
4. `begin_delivery` remembers the id with its first arrival time; a delivery already answered is
   acknowledged again (202) and not processed twice;
5. the change is made durable (journal, or Kafka acknowledgement) and only THEN the delivery is marked
   answered. A crash between the two leaves the id unanswered, so the sender's retry publishes the
   change again — with the same version, because the version of a change without one comes from the
   remembered first arrival time, not the retry's. The second copy has the same event id and version,
   and version fencing makes it a no-op downstream. Two identical deliveries racing each other end the
   same way. Marking first and publishing second would instead lose the change on such a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from headwater.kernel.ratelimit import RateLimit, RateLimiter, retry_after_seconds
from schemas import Accepted, IngestDocument, SourceKind, SourceRef
from schemas.common import utc_now
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
from services.ingest.ports import WebhookStore
from services.ingest.service import IntakeService
from services.ingest.webhooks import SOURCE_NAME, WebhookSource, verify

logger = logging.getLogger(__name__)


@dataclass
class WebhookIntake:
    store: WebhookStore
    intake: IntakeService
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    clock: Callable[[], datetime] = utc_now
    limiter: RateLimiter | None = None  # default: one bucket per source at the settings' rate
    _next_prune: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.limiter is None:
            limit = RateLimit(self.settings.rate_per_second, self.settings.rate_burst)
            self.limiter = RateLimiter(default=limit)

    def deliver(self, source_name: str, *, headers: Mapping[str, str], body: bytes) -> Accepted:
        """Accept one signed delivery of `source_name`, or acknowledge it again if already accepted."""
        try:
            return self._deliver(source_name, headers=headers, body=body)
        except WebhookError as exc:
            logger.info("webhook from %s refused (%s): %s", source_name, exc.status, exc)
            raise

    def _deliver(self, source_name: str, *, headers: Mapping[str, str], body: bytes) -> Accepted:
        now = self.clock()
        source = self.store.get_source(source_name) if SOURCE_NAME.match(source_name) else None
        # An unknown source verifies against no keys: the same 401 as a bad signature, so the answer
        # does not tell which source names exist.
        keys = source.active_keys(now) if source else []
        signed = verify(headers, body, keys=keys, now=now, tolerance_s=self.settings.tolerance_s)
        assert source is not None  # a signature matched one of its keys
        assert self.limiter is not None
        wait = self.limiter.acquire(source.name)
        if wait > 0:
            raise WebhookRateLimited(
                "this source's delivery rate is spent", retry_after=retry_after_seconds(wait)
            )
        command = document_from_body(body, source=source)
        digest = hashlib.sha256(body).digest()
        delivery = self.store.begin_delivery(source.name, signed.webhook_id, body_sha256=digest, at=now)
        if delivery.body_sha256 != digest:
            raise WebhookIdReused(f"webhook-id {signed.webhook_id} was first delivered with another body")
        if delivery.accepted is not None:
            logger.info(
                "webhook %s from %s acknowledged again, not reprocessed", signed.webhook_id, source.name
            )
            return delivery.accepted
        accepted = self.intake.accept(command, received_at=delivery.received_at)
        self.store.finish_delivery(source.name, signed.webhook_id, accepted)
        self._prune_now_and_then(now)
        return accepted

    def _prune_now_and_then(self, now: datetime) -> None:
        """Forget old webhook ids every `prune_interval_s`; best effort (the next round catches up)."""
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + timedelta(seconds=self.settings.prune_interval_s)
        try:
            self.store.prune_deliveries(before=now - timedelta(seconds=self.settings.delivery_retention_s))
        except WebhookStoreUnavailable:
            logger.warning("could not prune old webhook deliveries; will retry", exc_info=True)


def document_from_body(body: bytes, *, source: WebhookSource) -> IngestDocument:
    """The `IngestDocument` a verified body carries, in the source's tenant (the body may omit it)."""
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedWebhook("the body is not valid JSON") from None
    if not isinstance(fields, dict):
        raise MalformedWebhook("the body is not a JSON object")
    tenant = fields.setdefault("tenant", source.tenant)
    if tenant != source.tenant:
        raise WebhookForbidden(f"source {source.name} writes into its own tenant only")
    sent_source = fields.pop("source", None)
    uri = sent_source.get("uri") if isinstance(sent_source, dict) else None
    try:
        command = IngestDocument.model_validate(fields)
        origin = SourceRef(
            kind=SourceKind.WEBHOOK, name=source.name, uri=uri if isinstance(uri, str) else None
        )
    except ValidationError as exc:
        # Locations and messages only, never the submitted values (they may hold PII).
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise WebhookDocumentInvalid(problems) from None
    # Where a change came from is the source it was signed by, whatever the body claims.
    return command.model_copy(update={"source": origin})
