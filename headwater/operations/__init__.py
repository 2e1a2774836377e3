"""Operator tooling for the distributed runtime: replay, dead-letter inspection and redrive, lag.

Pure planning lives beside the aiokafka I/O in each module, so the plans unit-test without a broker;
`kafka_io` is the only module that talks to Kafka.
"""

from __future__ import annotations

from headwater.operations.errors import (
    GroupActive,
    InvalidRequest,
    KafkaOperationFailed,
    LetterNotFound,
    OperationError,
    RedriveRefused,
    TopicMissing,
)

__all__ = [
    "GroupActive",
    "InvalidRequest",
    "KafkaOperationFailed",
    "LetterNotFound",
    "OperationError",
    "RedriveRefused",
    "TopicMissing",
]
