"""Errors of the indexer and of the vector-index adapters; third-party errors are translated into these."""

from __future__ import annotations


class IndexerError(Exception):
    """Root of every indexer error."""


class IndexUnavailable(IndexerError):
    """The vector index could not be reached or failed transiently; the write must be retried."""


class CollectionNotFound(IndexerError):
    """The named collection (or alias) does not exist."""


class IndexConfigError(IndexerError):
    """A collection exists with a configuration that differs from the requested one, or a name is invalid."""


class InvalidEvent(IndexerError):
    """The event cannot be indexed as it stands (a bug upstream); retrying will not help."""


class MigrationError(IndexerError):
    """A migration command that cannot apply in the current state; the message says what to do."""


class ModelMismatch(IndexerError):
    """A change embedded by a model that none of the collections being written holds."""
