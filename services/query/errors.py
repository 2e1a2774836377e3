"""Errors of the query service."""

from __future__ import annotations


class QueryError(Exception):
    """Root of every query-service error."""

    status = 400
    title = "Bad query"


class IndexNotReady(QueryError):
    """No collection is behind the read alias yet."""

    status = 503
    title = "Index not ready"
