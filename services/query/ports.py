"""Ports of the query service (the vector index's port lives with the indexer)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.query.access import ApiKey


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
