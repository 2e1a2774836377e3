"""Settings of the embedded runtime (env prefix `HEADWATER_`); each service adds its own prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
