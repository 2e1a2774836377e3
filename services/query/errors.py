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


class FeatureUnavailable(QueryError):
    """The request asks for a stage this server was not configured with (a reranker, the knowledge graph)."""

    status = 400
    title = "Not available on this server"


class RerankerUnavailable(FeatureUnavailable):
    """No reranker is configured, or its model cannot be loaded from a local path."""


class RerankerFailed(QueryError):
    """The reranker answered with an error or not at all after retries."""

    status = 502
    title = "Reranker failed"


class EntityNotFound(QueryError):
    """The entity does not exist in the caller's tenant's graph."""

    status = 404
    title = "Entity not found"


class InvalidGraphQuery(QueryError):
    """Traversal bounds outside what the service allows."""

    status = 422
    title = "Invalid graph traversal"


class GraphStoreUnavailable(QueryError):
    """The knowledge-graph store could not be read."""

    status = 503
    title = "Knowledge graph unavailable"


class TenantRequired(QueryError):
    """Without an API key to take it from, the request must name its tenant."""

    status = 422
    title = "Tenant required"


class AccessError(QueryError):
    """The caller may not make this request; `headers()` go on the response."""

    def headers(self) -> dict[str, str]:
        return {}


class Unauthenticated(AccessError):
    """No API key, or one that is malformed, unknown or revoked."""

    status = 401
    title = "Unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(AccessError):
    """The key does not allow this tenant or these ACL groups."""

    status = 403
    title = "Forbidden"


class RateLimited(AccessError):
    """The key spent its request budget; it may try again after `retry_after` seconds."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class AccessNotConfigured(QueryError):
    """The app serves search without access control wired in: refuse rather than run unscoped."""

    status = 500
    title = "Access control not configured"


class KeyStoreError(QueryError):
    """The API key store failed (database unreachable, or a key id already taken)."""

    status = 503
    title = "Key store unavailable"


class UnknownIndex(QueryError):
    """`index` names no collection of this alias (or one already retired)."""

    status = 404
    title = "Unknown index"
