"""Dead letters: a message a stage could not process, kept whole with the reason."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.common import Contract, utc_now


class DeadLetter(Contract):
    """Event: a stage gave up on a message; the original bytes and headers travel with the reason."""

    schema_version: int = 1
    kind: Literal["dead_letter"] = "dead_letter"
    stage: str
    source_topic: str
    error_type: str
    reason: str
    attempts: int = 1
    key: str | None = None
    source_partition: int | None = None  # where the original sits (Kafka runtime; None when embedded)
    source_offset: int | None = None
    payload_base64: str  # the original message bytes, untouched
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: datetime = Field(default_factory=utc_now)
