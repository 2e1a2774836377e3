"""Query-service settings (env prefix `HEADWATER_QUERY_`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class QuerySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_QUERY_", frozen=True)

    candidates: int = Field(
        default=100, ge=1, le=1000, description="hits each retriever returns before fusion"
    )
    reranker: Literal["none", "tei", "cross-encoder"] = Field(
        default="none", description="second stage for `rerank: true`; none refuses such requests"
    )
    rerank_tei_url: str | None = Field(default=None, description="a TEI server running a reranker model")
    rerank_model: str | None = Field(
        default=None, description="cross-encoder: a local directory, or an installed package shipping one"
    )
    rerank_timeout_s: float = Field(default=30.0, gt=0)
    graph_linker: Literal["gazetteer", "ner"] = Field(
        default="gazetteer",
        description="entities of a query: its phrases matched against the graph's names, or NER",
    )
    graph_fanout: int = Field(default=10, ge=1, le=100, description="neighbours kept per entity and hop")
    graph_decay: float = Field(default=0.5, gt=0, le=1, description="score kept per hop away from a seed")

    @model_validator(mode="after")
    def _reranker_needs(self) -> QuerySettings:
        if self.reranker == "tei" and not self.rerank_tei_url:
            raise ValueError("reranker 'tei' needs HEADWATER_QUERY_RERANK_TEI_URL")
        if self.reranker == "cross-encoder" and not self.rerank_model:
            raise ValueError("reranker 'cross-encoder' needs HEADWATER_QUERY_RERANK_MODEL")
        return self


class AccessSettings(BaseSettings):
    """API keys and rate limits of the search API (env prefix `HEADWATER_QUERY_`)."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_QUERY_", frozen=True)

    auth: Literal["required", "disabled"] = Field(
        default="required",
        description="disabled: no API keys, the body's tenant and ACL are trusted (local and test only)",
    )
    rate_per_second: float = Field(default=20.0, gt=0, description="requests per second per key, on average")
    rate_burst: int = Field(default=40, ge=1, description="requests per key at once")

    def auth_required(self, *, environment: str) -> bool:
        """Whether searches need an API key; refuses to run without keys in production."""
        if self.auth == "disabled" and environment not in ("local", "test"):
            raise ValueError(
                f"HEADWATER_QUERY_AUTH=disabled is refused when HEADWATER_ENVIRONMENT={environment}"
            )
        return self.auth == "required"
