"""KeyStore in a dict: for tests and throwaway servers."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime

from services.query.errors import KeyStoreError
from services.query.ports import ApiKey


class InMemoryKeyStore:
    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def add(self, key: ApiKey) -> None:
        with self._lock:
            if key.key_id in self._keys:
                raise KeyStoreError(f"key id {key.key_id} is taken")
            self._keys[key.key_id] = key

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        with self._lock:
            key = self._keys.get(key_id)
            if key is None or key.revoked_at is not None:
                return key
            self._keys[key_id] = dataclasses.replace(key, revoked_at=at)
            return self._keys[key_id]

    def list_keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        keys = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))
