"""Indexer settings (env prefix `HEADWATER_INDEXER_`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IndexerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_INDEXER_", frozen=True)

    engine: Literal["edge", "qdrant"] = Field(default="edge", description="in-process shard or Qdrant server")
    data_dir: Path = Field(default=Path("data/index"), description="root of the edge engine's shards")
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL, for engine=qdrant")
    qdrant_api_key: SecretStr | None = None
    alias: str = Field(default="chunks", description="the alias readers and the indexer resolve per request")
    dense_dim: int = Field(default=384, gt=0)
    edge_flush_each_write: bool = Field(
        default=False,
        description="fsync after each write: survives power loss, not only a killed process (slower)",
    )

    @model_validator(mode="after")
    def _engine_needs(self) -> IndexerSettings:
        if self.engine == "qdrant" and not self.qdrant_url:
            raise ValueError("engine=qdrant needs qdrant_url")
        return self


class CompactionSettings(BaseSettings):
    """Index compaction (env prefix `HEADWATER_INDEXER_`), run by the process that owns the index writes."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_INDEXER_", frozen=True)

    compact_retention_s: float = Field(
        default=24 * 3600, ge=0, description="hard-delete chunks soft-deleted longer ago than this"
    )
    compact_interval_s: float = Field(
        default=3600, ge=0, description="seconds between compactions in a running process; 0: never"
    )
    compact_first_delay_s: float = Field(
        default=60, ge=0, description="wait after start before the first run, so restarts never starve it"
    )

    @property
    def retention(self) -> timedelta:
        return timedelta(seconds=self.compact_retention_s)
