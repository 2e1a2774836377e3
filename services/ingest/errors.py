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
