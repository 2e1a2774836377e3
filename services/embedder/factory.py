"""Builds the embedding backend, cache and sparse encoder that the settings name."""

from __future__ import annotations

from headwater.kernel.http_retry import RetryPolicy
from services.embedder.adapters.cache import InMemoryEmbeddingCache
from services.embedder.config import EmbedderSettings
from services.embedder.ports import EmbeddingBackend
from services.embedder.profiles import ModelProfile
from services.embedder.sparse import SparseEncoder


def build_backend(settings: EmbedderSettings) -> EmbeddingBackend:
    """The configured backend (`settings.profile` names one, else the plain settings); heavy imports
    happen only for the one chosen."""
    if settings.profile:
        from services.embedder.profiles import load_profiles, resolve_profile

        profile = resolve_profile(settings.profile, load_profiles(settings.profiles_file))
        return build_profile_backend(profile, settings)
    return _build_plain(settings)


def build_profile_backend(profile: ModelProfile, base: EmbedderSettings | None = None) -> EmbeddingBackend:
    """The backend a profile describes (a truncating wrapper when it keeps fewer dimensions)."""
    backend = _build_plain(profile.settings(base))
    if profile.dimensions is not None:
        from services.embedder.adapters.truncated import TruncatedBackend

        backend = TruncatedBackend(backend, profile.dimensions)
    return backend


def _build_plain(settings: EmbedderSettings) -> EmbeddingBackend:
    retry = RetryPolicy(max_attempts=settings.http_max_attempts)
    match settings.backend:
        case "local":
            from services.embedder.adapters.local import SentenceTransformerBackend

            return SentenceTransformerBackend(device=settings.device, batch_size=settings.model_batch_size)
        case "onnx-int8":
            from services.embedder.adapters.onnx import OnnxBackend

            return OnnxBackend(cache_dir=settings.onnx_cache_dir, batch_size=settings.model_batch_size)
        case "tei":
            from services.embedder.adapters.tei import TeiBackend

            assert settings.tei_url  # checked by the settings validator
            return TeiBackend(
                settings.tei_url,
                timeout=settings.http_timeout_s,
                max_client_batch_size=settings.tei_max_client_batch_size,
                retry=retry,
            )
        case "openai":
            from services.embedder.adapters.openai import OpenAICompatibleBackend

            assert settings.openai_api_key  # checked by the settings validator
            return OpenAICompatibleBackend(
                settings.openai_url,
                settings.openai_api_key,
                settings.openai_model,
                dimensions=settings.openai_dimensions,
                timeout=settings.http_timeout_s,
                retry=retry,
            )
        case "hashing":
            from services.embedder.adapters.fake import HashingBackend

            return HashingBackend()


def build_memory_cache(settings: EmbedderSettings) -> InMemoryEmbeddingCache:
    """The bounded in-process cache (the embedded runtime may pass a Postgres one instead)."""
    return InMemoryEmbeddingCache(max_entries=settings.cache_max_entries)


def build_sparse_encoder(settings: EmbedderSettings) -> SparseEncoder:
    return SparseEncoder(avg_len=settings.sparse_avg_len)
