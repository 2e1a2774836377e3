"""Embedder settings (env prefix `HEADWATER_EMBEDDER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BackendName = Literal["local", "onnx-int8", "tei", "openai", "hashing"]
_PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "sk-...", "your-api-key"})


class EmbedderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_EMBEDDER_", frozen=True)

    profile: str | None = Field(
        default=None,
        description="a named model profile (built in, or from the profiles file); overrides backend",
    )
    profiles_file: Path | None = Field(
        default=None,
        description="TOML or JSON file of extra model profiles",
    )
    backend: BackendName = Field(
        default="onnx-int8",
        description="dense embedding backend: onnx-int8 on CPU (see docs/decisions/0004), local = fp32/CUDA",
    )
    device: Literal["cpu", "cuda"] | None = Field(
        default=None, description="local backend; None picks CUDA if seen"
    )
    model_batch_size: int = Field(default=32, ge=1, description="texts per forward pass of a local model")
    onnx_cache_dir: Path | None = Field(
        default=None, description="exported models; ~/.cache/headwater/onnx if unset"
    )
    tei_url: str | None = None
    tei_max_client_batch_size: int = Field(
        default=32, ge=1, description="the server's --max-client-batch-size"
    )
    openai_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "text-embedding-3-small"
    openai_dimensions: int | None = Field(default=None, ge=1, description="ask the API for shortened vectors")
    http_timeout_s: float = Field(default=30.0, gt=0)
    http_max_attempts: int = Field(default=5, ge=1)
    max_batch_tokens: int = Field(default=8192, ge=1, description="token budget of one backend call")
    max_batch_size: int = Field(default=64, ge=1, description="texts in one backend call")
    cache_max_entries: int = Field(default=100_000, ge=1, description="in-memory cache bound")
    sparse_avg_len: float = Field(default=256.0, gt=0, description="BM25 length norm pivot, in encoder terms")

    @model_validator(mode="after")
    def _backend_needs(self) -> EmbedderSettings:
        if self.backend == "tei" and not self.tei_url:
            raise ValueError("backend 'tei' needs HEADWATER_EMBEDDER_TEI_URL")
        if self.backend == "openai":
            key = self.openai_api_key.get_secret_value() if self.openai_api_key else ""
            if key.strip().lower() in _PLACEHOLDERS:
                raise ValueError("backend 'openai' needs a real HEADWATER_EMBEDDER_OPENAI_API_KEY")
        return self
