"""CDC settings of the ingest service (env prefix `HEADWATER_CDC_`) and the mapping file they name."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.sources import CdcMappings
from services.ingest.errors import CdcError


class CdcSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_CDC_", frozen=True)

    mappings: Path | None = Field(
        default=None,
        description="table mappings (JSON or TOML); the ingest service consumes the CDC topics they name",
    )


def load_mappings(path: Path) -> CdcMappings:
    """Read and validate a mapping file; `.toml` is TOML, anything else JSON."""
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return CdcMappings.model_validate(data)
    except (OSError, ValueError, ValidationError) as exc:  # JSON and TOML errors are ValueErrors
        raise CdcError(f"CDC mappings {path}: {exc}") from exc
