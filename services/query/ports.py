"""Ports of the query service (the vector index's port lives with the indexer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from headwater.kernel.ratelimit import RateLimit


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A stored key: the tenant and ACL groups it grants, never its secret."""

    key_id: str
    tenant: str
    acl_groups: tuple[str, ...]
    secret_sha256: bytes = field(repr=False)
    created_at: datetime
    revoked_at: datetime | None = None
    rate_limit: RateLimit | None = None  # None: the server's default
    label: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyStore(Protocol):
    """Where API keys live: Postgres in production, a dict in tests."""

    def add(self, key: ApiKey) -> None:
        """Store a new key; `KeyStoreError` when its key id is taken."""

    def get(self, key_id: str) -> ApiKey | None:
        """The key, revoked or not; None when there is no such key."""

    def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        """Revoke a key; revoking twice keeps the first time. None when there is no such key."""

    def list_keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of one tenant), oldest first."""
