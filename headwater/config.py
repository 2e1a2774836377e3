"""Settings of the embedded runtime (env prefix `HEADWATER_`); each service adds its own prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.search import MetadataKey
from services.indexer.ports import MetadataIndexKind

LOCAL_PII_SECRET = "local-development-only-pii-secret"  # noqa: S105 - refused outside local, see below


class HeadwaterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_", frozen=True)

    environment: Literal["local", "test", "production"] = "local"
    home: Path = Field(default=Path(".headwater"), description="state of the embedded runtime")
    database_url: str | None = Field(
        default=None, description="an existing Postgres; default: embedded server"
    )
    database_schema: str = Field(default="headwater", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pii_secret: SecretStr = SecretStr(LOCAL_PII_SECRET)
    collection_alias: str = "headwater_chunks"
    metadata_indexes: dict[MetadataKey, MetadataIndexKind] = Field(
        default_factory=dict,
        description='metadata keys that filters use, by kind: {"year": "integer", "team": "keyword"}',
    )
    qdrant_url: str | None = Field(default=None, description="a Qdrant server; default: embedded engine")
    qdrant_api_key: SecretStr | None = None
    queue_size: int = Field(default=256, ge=1, description="bound of every in-process stage queue")
    batch_size: int = Field(default=32, ge=1, description="documents a stage takes at once")
    max_attempts: int = Field(
        default=4, ge=1, description="tries of a transient failure before dead-lettering"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @model_validator(mode="after")
    def _no_placeholder_secret_outside_local(self) -> HeadwaterSettings:
        if self.environment == "production" and self.pii_secret.get_secret_value() == LOCAL_PII_SECRET:
            raise ValueError(
                "set HEADWATER_PII_SECRET: the development pseudonym key is refused in production"
            )
        return self


class KafkaSettings(BaseSettings):
    """The distributed runtime's Kafka client settings (env prefix `HEADWATER_KAFKA_`)."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_KAFKA_", frozen=True)

    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = Field(default="", description="prepended to every topic name (shared clusters)")
    group_prefix: str = Field(default="headwater", description="consumer group of stage S: <prefix>.<S>")
    partitions: int = Field(default=6, ge=1, description="partitions of topics this deployment creates")
    replication_factor: int = Field(default=1, ge=1)
    max_batch: int = Field(default=32, ge=1, description="records a consumer holds in flight at once")
    # FastStream sleeps this long again after an empty fetch, so it bounds the latency an idle stage adds
    # per hop (five hops); 50 ms keeps that small at a negligible polling cost.
    batch_timeout_ms: int = Field(default=50, ge=1, description="how long a fetch waits to fill a batch")
    max_redeliveries: int = Field(
        default=5, ge=1, description="transient failures of one batch before its messages are isolated"
    )
    pause_s: float = Field(default=2.0, gt=0, description="first back-off when a downstream is unavailable")
    send_timeout_s: float = Field(default=10.0, gt=0, description="intake answers 503 past this")
    max_pending_sends: int = Field(default=512, ge=1, description="intake 503s above this many in flight")
    graceful_timeout_s: float = Field(default=30.0, gt=0, description="≥ the longest batch a stage runs")

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    def group(self, stage: str) -> str:
        return f"{self.group_prefix}.{stage}"


class MigrationSettings(BaseSettings):
    """Embedding-model migrations (env prefix `HEADWATER_MIGRATION_`)."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_MIGRATION_", frozen=True)

    eval_set: Path | None = Field(
        default=None, description="JSON list of {tenant, query, relevant}: the cutover gate's queries"
    )
    eval_mode: Literal["hybrid", "dense", "sparse"] = Field(
        default="hybrid", description="the search mode the gate compares (what users get)"
    )
    gateway_url: str = Field(default="http://127.0.0.1:8080", description="query gateway `compare` searches")
    api_key: SecretStr | None = Field(default=None, description="a key of the eval set's tenant")
    page_size: int = Field(default=128, ge=1, description="embedded runtime: points copied per step")
    pause_s: float = Field(
        default=0.0, ge=0, description="pause between backfill steps, to leave the live pipeline room"
    )
    poll_s: float = Field(default=1.0, gt=0, description="how often index owners look for new decisions")
    wait_s: float = Field(default=60.0, ge=0, description="how long the CLI waits for a decision to apply")
