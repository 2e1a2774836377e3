"""Settings of traces and logs (env prefix `HEADWATER_`); export itself is configured by the
OpenTelemetry SDK's standard OTEL_* variables, which the SDK reads."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_", frozen=True)

    log_format: Literal["text", "json"] | None = Field(
        default=None, description="text or json lines; default: json for `headwater run`, text otherwise"
    )
    traces_file: Path | None = Field(
        default=None,
        description="also write finished spans here, one JSON object per line; `{service}` in the path "
        "is replaced by the process's service name, so processes sharing an environment write apart",
    )
