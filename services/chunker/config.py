"""Chunker settings (env prefix `HEADWATER_CHUNKER_`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChunkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_CHUNKER_", frozen=True)

    max_tokens: int = Field(
        default=256, ge=16, description="upper bound per chunk, in the model's word pieces"
    )
    min_tokens: int = Field(default=64, ge=1, description="a split never leaves a piece smaller than this")
    overlap_tokens: int = Field(
        default=32, ge=0, description="whole sentences repeated from the previous chunk"
    )
    boundary_model: Literal["embedding", "onnx-int8"] = Field(
        default="onnx-int8",
        description="what embeds sentences to score cut points: the chunk embedding model itself, or "
        "(for the local MiniLM) its int8 ONNX export, ~2x faster; a cut point tolerates its 0.99 cosine",
    )
    split_similarity: float | None = Field(
        default=None,
        description="also cut fitting sections where neighbour similarity is below this (costs embeddings)",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ChunkerSettings:
        if not self.min_tokens < self.max_tokens:
            raise ValueError("min_tokens must be smaller than max_tokens")
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be under half of max_tokens")
        return self
