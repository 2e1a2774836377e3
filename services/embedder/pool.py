"""One backend per embedding model in a process, built on first use and shared by whoever needs it (the
embedding stage, the query service, a migration's re-embedding)."""

from __future__ import annotations

import threading
from typing import Any

from services.embedder.config import EmbedderSettings
from services.embedder.errors import NoProfileForModel
from services.embedder.factory import build_profile_backend
from services.embedder.ports import EmbeddingBackend
from services.embedder.profiles import ModelProfile


class BackendPool:
    def __init__(self, settings: EmbedderSettings, *backends: EmbeddingBackend) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._by_model: dict[str, EmbeddingBackend] = {b.model_id: b for b in backends}

    def add(self, backend: EmbeddingBackend) -> EmbeddingBackend:
        """Share a backend built elsewhere (the process's configured one)."""
        with self._lock:
            return self._by_model.setdefault(backend.model_id, backend)

    def get(self, model_id: str, profile: dict[str, Any] | None) -> EmbeddingBackend:
        """The backend for `model_id`, built from `profile` the first time it is asked for."""
        with self._lock:
            if model_id in self._by_model:
                return self._by_model[model_id]
            if profile is None:
                raise NoProfileForModel(
                    f"no profile recorded for model {model_id!r}, and this process does not run it"
                )
            backend = build_profile_backend(ModelProfile.model_validate(profile), self._settings)
            if backend.model_id != model_id:
                raise NoProfileForModel(
                    f"profile {profile.get('name')!r} builds {backend.model_id!r}, not {model_id!r}"
                )
            self._by_model[model_id] = backend
            return backend
