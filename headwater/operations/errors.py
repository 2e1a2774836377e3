"""Errors of the operator commands; each one says what the operator can do about it."""

from __future__ import annotations


class OperationError(Exception):
    """Root of every operator-command error."""


class InvalidRequest(OperationError):
    """The options contradict each other or name something that cannot exist."""


class TopicMissing(OperationError):
    """A topic the command needs is not on the cluster."""


class GroupActive(OperationError):
    """The consumer group has live members, and Kafka refuses to move a live group's offsets."""


class LetterNotFound(OperationError):
    """No dead letter sits at the requested partition and offset."""


class RedriveRefused(OperationError):
    """The redrive could not record its progress safely, so it republished nothing."""


class KafkaOperationFailed(OperationError):
    """The broker refused or did not answer; the message carries the client's error."""
