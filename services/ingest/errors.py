"""Errors of the ingest service; every one is a client problem that maps to a 4xx and never retries."""

from __future__ import annotations


class IngestError(Exception):
    """Root of every ingest error."""

    status = 400
    title = "Invalid document"


class InvalidDocument(IngestError):
    """The envelope is well-formed JSON but its content cannot be used."""


class UnsupportedContentType(IngestError):
    """The content type has no parser."""

    status = 415
    title = "Unsupported content type"


class DocumentTooLarge(IngestError):
    """The body exceeds the configured size limit."""

    status = 413
    title = "Document too large"


class EmptyDocument(IngestError):
    """The document parsed to no text at all, which is never silently indexed."""

    status = 422
    title = "Document has no text"


class IntakeUnavailable(IngestError):
    """The change could not be made durable in time (broker slow or unreachable, too much in flight).

    Nothing was accepted; the sender retries after `retry_after` seconds and loses nothing.
    """

    status = 503
    title = "Intake temporarily unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class WebhookError(IngestError):
    """A webhook delivery was refused; the sender may retry only where the status says so (429, 503)."""


class MalformedWebhook(WebhookError):
    """The webhook headers are missing or malformed (no id or timestamp, a non-numeric timestamp)."""

    status = 400
    title = "Malformed webhook"


class WebhookUnauthenticated(WebhookError):
    """No valid signature: unknown or retired source, no matching `v1` signature, or a timestamp
    outside the tolerance (a replay of an old capture)."""

    status = 401
    title = "Invalid webhook signature"


class WebhookForbidden(WebhookError):
    """The delivery is signed, but names a tenant other than its source's."""

    status = 403
    title = "Tenant not allowed for this source"


class WebhookDocumentInvalid(WebhookError):
    """The signed body is JSON but not a valid `IngestDocument`."""

    status = 422
    title = "Invalid document"


class WebhookIdReused(WebhookError):
    """A `webhook-id` already seen with a different body: a sender bug, never silently acknowledged."""

    status = 409
    title = "Webhook id reused with another body"


class WebhookTooLarge(WebhookError):
    """The body exceeds the webhook size limit; refused before it is buffered."""

    status = 413
    title = "Webhook body too large"


class WebhookRateLimited(WebhookError):
    """The source sent more deliveries than its rate allows; retry after `retry_after` seconds."""

    status = 429
    title = "Too many webhook deliveries"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class WebhookStoreUnavailable(WebhookError):
    """The webhook sources or deliveries could not be read or written; retry after `retry_after`."""

    status = 503
    title = "Webhook store unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class WebhookSourceError(WebhookError):
    """A webhook source cannot be created or changed as asked (name taken, unknown source, bad secret)."""


class CdcError(IngestError):
    """A change event from a CDC connector cannot become a document change; it is dead-lettered."""


class MalformedChangeEvent(CdcError):
    """The record is not a Debezium change event (not JSON, no `op`, `source` or LSN, an unknown op)."""


class UnmappedTable(CdcError):
    """The change comes from a table that no table mapping covers."""


class RowNotMappable(CdcError):
    """The row lacks what its table mapping needs (a column, a valid tenant, a resolvable identity)."""


class UnavailableValue(RowNotMappable):
    """A mapped column carries Debezium's placeholder for an unchanged TOASTed value, not the value:
    indexing it would replace the real text. Fix at the source: REPLICA IDENTITY FULL or the connector's
    reselect post-processor."""


class CdcStateUnavailable(CdcError):
    """The CDC row state (in Postgres) could not be read or written; the batch is retried."""
