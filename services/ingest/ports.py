"""Ports of the ingest service."""

from __future__ import annotations

from typing import Protocol

from schemas import DocumentChanged


class ChangeLog(Protocol):
    """Where accepted changes are made durable: the embedded journal, or a Kafka topic."""

    def append(self, event: DocumentChanged) -> bool:
        """Store durably before returning; False if this exact event was already stored."""
        ...
