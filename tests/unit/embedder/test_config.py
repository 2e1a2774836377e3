from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.embedder.adapters.fake import HashingBackend
from services.embedder.adapters.openai import OpenAICompatibleBackend
from services.embedder.adapters.tei import TeiBackend
from services.embedder.config import EmbedderSettings
from services.embedder.factory import build_backend, build_memory_cache, build_sparse_encoder
from services.embedder.ports import EmbeddingBackend, EmbeddingCache


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_EMBEDDER_BACKEND", "tei")
    monkeypatch.setenv("HEADWATER_EMBEDDER_TEI_URL", "http://tei:8080")
    monkeypatch.setenv("HEADWATER_EMBEDDER_MAX_BATCH_TOKENS", "4096")
    settings = EmbedderSettings()
    assert (settings.backend, settings.tei_url, settings.max_batch_tokens) == ("tei", "http://tei:8080", 4096)
    assert isinstance(build_backend(settings), TeiBackend)


def test_remote_backends_need_their_settings() -> None:
    with pytest.raises(ValidationError, match="TEI_URL"):
        EmbedderSettings(backend="tei")
    for key in (None, "changeme", " "):
        with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
            EmbedderSettings(backend="openai", openai_api_key=key)


def test_factory_builds_the_named_backend_without_secrets_in_repr() -> None:
    settings = EmbedderSettings(backend="openai", openai_api_key="sk-real-looking-key", openai_dimensions=256)
    backend = build_backend(settings)
    assert isinstance(backend, OpenAICompatibleBackend)
    assert backend.model_id == "openai:text-embedding-3-small@256"
    assert "sk-real-looking-key" not in repr(settings)
    assert "sk-real-looking-key" not in repr(backend)
    hashing = build_backend(EmbedderSettings(backend="hashing"))
    assert isinstance(hashing, HashingBackend)
    assert isinstance(hashing, EmbeddingBackend)
    assert isinstance(build_memory_cache(EmbedderSettings()), EmbeddingCache)
    assert build_sparse_encoder(EmbedderSettings(sparse_avg_len=100)).avg_len == 100
