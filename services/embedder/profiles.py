"""Named embedding-model configurations ("profiles"): what an index collection was embedded with.

A collection holds vectors of exactly one profile, and every reader and writer of that collection must
embed with the same one: the query service embeds a query with the profile of the collection it reads,
and a migration re-embeds chunks with the profile of the collection it builds. The registry of which
collection holds which profile lives in Postgres (`services/indexer/migration`); this module only knows
how to describe a profile and turn it into a backend.

Built-in profiles are the local models that ship offline; deployments add their own (TEI, an
OpenAI-compatible API, another local configuration) in a TOML or JSON file named by
`HEADWATER_EMBEDDER_PROFILES_FILE`. Secrets never go into a profile: an API key comes from the process's
own `HEADWATER_EMBEDDER_*` settings when the backend is built.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.embedder.config import BackendName, EmbedderSettings
from services.embedder.errors import UnknownProfile

# The fields of EmbedderSettings that choose *which vectors* come out; the rest (batch sizes, timeouts,
# caches, secrets) are how a process runs the model and stay the process's own.
_MODEL_FIELDS = ("backend", "tei_url", "openai_url", "openai_model", "openai_dimensions")


class ModelProfile(BaseModel):
    """One embedding-model configuration. Two profiles with the same `model_id` give the same vectors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    backend: BackendName
    dimensions: int | None = Field(
        default=None, ge=1, description="keep the first n dimensions and re-normalise (Matryoshka style)"
    )
    tei_url: str | None = None
    openai_url: str | None = None
    openai_model: str | None = None
    openai_dimensions: int | None = Field(default=None, ge=1)
    # How the model's vectors compare. Backends return unit-length rows, for which cosine and dot agree.
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    description: str = ""

    def settings(self, base: EmbedderSettings | None = None) -> EmbedderSettings:
        """The process's embedder settings with this profile's model fields on top."""
        base = base or EmbedderSettings()
        chosen = {f: getattr(self, f) for f in _MODEL_FIELDS if getattr(self, f) is not None}
        merged = base.model_dump() | chosen | {"profile": self.name}
        return EmbedderSettings.model_validate(merged)


BUILTIN_PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile(
            name="minilm-int8",
            backend="onnx-int8",
            description="all-MiniLM-L6-v2, int8 ONNX on CPU (the default)",
        ),
        ModelProfile(
            name="minilm", backend="local", description="all-MiniLM-L6-v2, fp32 sentence-transformers"
        ),
        ModelProfile(
            name="minilm-int8-d256",
            backend="onnx-int8",
            dimensions=256,
            description="all-MiniLM-L6-v2 int8, first 256 dimensions: a smaller index, somewhat lower recall",
        ),
        ModelProfile(name="hashing", backend="hashing", description="character n-gram hashing: tests only"),
    )
}
DEFAULT_PROFILE = "minilm-int8"


def load_profiles(path: Path | None) -> dict[str, ModelProfile]:
    """Built-in profiles, plus (overriding them) those in `path`: a TOML or JSON table of name → fields."""
    profiles = dict(BUILTIN_PROFILES)
    if path is None:
        return profiles
    text = path.read_text()
    raw: dict[str, Any] = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    for name, fields in raw.items():
        try:
            profiles[name] = ModelProfile.model_validate({"name": name, **fields})
        except ValidationError as exc:
            raise ValueError(f"profile {name!r} in {path}: {exc}") from exc
    return profiles


def resolve_profile(name: str, profiles: dict[str, ModelProfile]) -> ModelProfile:
    try:
        return profiles[name]
    except KeyError:
        raise UnknownProfile(
            f"unknown embedding profile {name!r}; known: {', '.join(sorted(profiles))}"
        ) from None


def current_profile(settings: EmbedderSettings, profiles: dict[str, ModelProfile]) -> ModelProfile:
    """The profile this process's settings select: `HEADWATER_EMBEDDER_PROFILE`, or the plain settings."""
    if settings.profile:
        return resolve_profile(settings.profile, profiles)
    fields = {f: getattr(settings, f) for f in _MODEL_FIELDS}
    return ModelProfile(name=f"settings-{settings.backend}", **fields)
