"""Errors of the graph builder; adapters translate spaCy and psycopg failures into these."""

from __future__ import annotations


class GraphBuilderError(Exception):
    """Root of every graph-builder error."""


class RecognizerUnavailable(GraphBuilderError):
    """The NER model cannot be loaded or run; retrying the message will not help until it is fixed."""


class RecognizerRequired(GraphBuilderError):
    """A chunk carries no upstream mentions and no recognizer was configured to find them."""


class GraphStoreError(GraphBuilderError):
    """The graph store failed; the change was not applied and the message should be retried."""


class UnknownEntity(GraphBuilderError):
    """The asked entity does not exist in this tenant's graph."""


class InvalidTraversal(GraphBuilderError):
    """Traversal bounds (hops, fan-out) are outside what the service allows."""
