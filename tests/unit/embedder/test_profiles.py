"""Embedding-model profiles: built in, loaded from a file, resolved by name, built into a backend (a
truncating one when a profile keeps fewer dimensions), and shared per model id by the backend pool."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from services.embedder.adapters.fake import HashingBackend
from services.embedder.adapters.truncated import TruncatedBackend
from services.embedder.config import EmbedderSettings
from services.embedder.errors import NoProfileForModel, PermanentEmbeddingError, UnknownProfile
from services.embedder.factory import build_backend, build_profile_backend
from services.embedder.pool import BackendPool
from services.embedder.ports import EmbeddingBackend
from services.embedder.profiles import (
    BUILTIN_PROFILES,
    DEFAULT_PROFILE,
    ModelProfile,
    current_profile,
    load_profiles,
    resolve_profile,
)

TEXTS = ["the quick brown fox", "jumps over", "the lazy dog", ""]


@pytest.fixture(autouse=True)
def _no_embedder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HEADWATER_EMBEDDER_"):
            monkeypatch.delenv(key)


def test_builtin_profiles() -> None:
    assert set(BUILTIN_PROFILES) == {"minilm-int8", "minilm", "minilm-int8-d256", "hashing"}
    assert DEFAULT_PROFILE in BUILTIN_PROFILES
    assert all(name == p.name for name, p in BUILTIN_PROFILES.items())
    assert BUILTIN_PROFILES["minilm-int8"].backend == "onnx-int8"
    assert BUILTIN_PROFILES["minilm-int8-d256"].dimensions == 256
    assert BUILTIN_PROFILES["hashing"].backend == "hashing"
    assert load_profiles(None) == BUILTIN_PROFILES


def test_profiles_from_toml_add_to_and_override_the_builtins(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(
        """
[hashing]
backend = "hashing"
dimensions = 16
description = "shorter"

[bge-tei]
backend = "tei"
tei_url = "http://tei:8080"
"""
    )
    profiles = load_profiles(path)
    assert profiles["hashing"] == ModelProfile(
        name="hashing", backend="hashing", dimensions=16, description="shorter"
    )
    assert profiles["bge-tei"].tei_url == "http://tei:8080"
    assert profiles["minilm"] == BUILTIN_PROFILES["minilm"]
    assert BUILTIN_PROFILES["hashing"].dimensions is None  # the builtins themselves are untouched


def test_profiles_from_json(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(
        json.dumps(
            {
                "minilm": {"backend": "onnx-int8", "description": "replaced"},
                "small-openai": {"backend": "openai", "openai_model": "m", "openai_dimensions": 128},
            }
        )
    )
    profiles = load_profiles(path)
    assert profiles["minilm"].backend == "onnx-int8" and profiles["minilm"].description == "replaced"
    assert profiles["small-openai"].openai_dimensions == 128
    assert set(BUILTIN_PROFILES) < set(profiles)


@pytest.mark.parametrize(
    "fields",
    [
        {"backend": "no-such-backend"},
        {"backend": "hashing", "api_key": "sk-secret"},  # extra fields (secrets) are refused
        {"backend": "hashing", "dimensions": 0},
    ],
)
def test_an_invalid_profile_is_named_in_the_error(tmp_path: Path, fields: dict[str, object]) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"good": {"backend": "hashing"}, "broken-one": fields}))
    with pytest.raises(ValueError, match=r"profile 'broken-one' in .*profiles\.json"):
        load_profiles(path)


def test_a_profile_name_must_be_a_plain_slug(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text('["Not A Slug"]\nbackend = "hashing"\n')
    with pytest.raises(ValueError, match="profile 'Not A Slug'"):
        load_profiles(path)


def test_resolve_profile() -> None:
    assert resolve_profile("minilm", BUILTIN_PROFILES) is BUILTIN_PROFILES["minilm"]
    with pytest.raises(UnknownProfile) as unknown:
        resolve_profile("gpt-embed", BUILTIN_PROFILES)
    assert isinstance(unknown.value, ValueError)
    assert str(unknown.value) == (
        "unknown embedding profile 'gpt-embed'; known: hashing, minilm, minilm-int8, minilm-int8-d256"
    )


def test_current_profile_is_the_named_one_or_the_plain_settings() -> None:
    named = EmbedderSettings(profile="minilm-int8-d256")
    assert current_profile(named, BUILTIN_PROFILES) is BUILTIN_PROFILES["minilm-int8-d256"]
    with pytest.raises(UnknownProfile):
        current_profile(EmbedderSettings(profile="nope"), BUILTIN_PROFILES)
    plain = current_profile(EmbedderSettings(backend="tei", tei_url="http://t:1"), BUILTIN_PROFILES)
    assert (plain.name, plain.backend, plain.tei_url, plain.dimensions) == (
        "settings-tei",
        "tei",
        "http://t:1",
        None,
    )


def test_a_profile_chooses_the_model_and_the_process_keeps_its_own_settings() -> None:
    base = EmbedderSettings(
        backend="hashing", openai_api_key="sk-real-looking-key", max_batch_tokens=1234, http_max_attempts=2
    )
    profile = ModelProfile(name="remote", backend="openai", openai_model="text-embedding-3-large")
    settings = profile.settings(base)
    assert (settings.backend, settings.openai_model, settings.profile) == (
        "openai",
        "text-embedding-3-large",
        "remote",
    )
    assert settings.max_batch_tokens == 1234 and settings.http_max_attempts == 2
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-real-looking-key"
    assert "sk-real-looking-key" not in profile.model_dump_json()


def test_a_named_profile_in_the_settings_builds_its_backend(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text('[tiny]\nbackend = "hashing"\ndimensions = 8\n')
    backend = build_backend(EmbedderSettings(profile="tiny", profiles_file=path))
    assert isinstance(backend, TruncatedBackend)
    assert (backend.model_id, backend.dimension) == ("hashing-3gram-64+d8", 8)
    assert isinstance(build_profile_backend(BUILTIN_PROFILES["hashing"]), HashingBackend)


# -- TruncatedBackend --------------------------------------------------------------------------------


def test_truncated_backend_keeps_a_normalised_prefix() -> None:
    inner = HashingBackend(dimension=64, model_id="inner-model")
    backend = TruncatedBackend(inner, 24)
    assert isinstance(backend, EmbeddingBackend)
    assert backend.model_id == "inner-model+d24"
    assert backend.dimension == 24
    assert backend.max_input_tokens == inner.max_input_tokens
    rows = backend.embed(TEXTS[:3])
    assert rows.shape == (3, 24)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    full = inner.embed(TEXTS[:3])[:, :24]
    np.testing.assert_allclose(rows, full / np.linalg.norm(full, axis=1, keepdims=True), rtol=1e-5)
    assert not np.allclose(rows, full)  # the prefix alone is not unit length: it was re-normalised


def test_truncated_backend_keeps_all_dimensions_when_asked() -> None:
    inner = HashingBackend(dimension=16)
    rows = TruncatedBackend(inner, 16).embed(TEXTS[:2])
    np.testing.assert_allclose(rows, inner.embed(TEXTS[:2]), rtol=1e-5)


def test_an_empty_text_stays_a_zero_row_not_nan() -> None:
    rows = TruncatedBackend(HashingBackend(dimension=16), 4).embed([""])
    assert not np.isnan(rows).any()


@pytest.mark.parametrize("dims", [0, -1, 65])
def test_truncated_backend_refuses_dimensions_the_model_does_not_have(dims: int) -> None:
    with pytest.raises(PermanentEmbeddingError, match=f"cannot keep {dims} of hashing-3gram-64's 64"):
        TruncatedBackend(HashingBackend(dimension=64), dims)


# -- BackendPool -----------------------------------------------------------------------------------


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The profiles the pool builds a backend for."""
    built: list[str] = []

    def counting(profile: ModelProfile, base: EmbedderSettings | None = None) -> EmbeddingBackend:
        built.append(profile.name)
        return build_profile_backend(profile, base)

    monkeypatch.setattr("services.embedder.pool.build_profile_backend", counting)
    return built


def test_the_pool_builds_once_per_model(builds: list[str]) -> None:
    pool = BackendPool(EmbedderSettings(backend="hashing"))
    profile = {"name": "tiny", "backend": "hashing", "dimensions": 8}
    first = pool.get("hashing-3gram-64+d8", profile)
    assert (first.model_id, first.dimension) == ("hashing-3gram-64+d8", 8)
    assert pool.get("hashing-3gram-64+d8", profile) is first
    assert pool.get("hashing-3gram-64+d8", None) is first  # known now: no profile needed
    full = pool.get("hashing-3gram-64", BUILTIN_PROFILES["hashing"].model_dump())
    assert full is not first and full.dimension == 64
    assert builds == ["tiny", "hashing"]


def test_the_pool_shares_backends_it_was_given(builds: list[str]) -> None:
    given = HashingBackend(dimension=32, model_id="configured")
    pool = BackendPool(EmbedderSettings(backend="hashing"), given)
    assert pool.get("configured", None) is given
    other = HashingBackend(dimension=32, model_id="other")
    assert pool.add(other) is other
    assert pool.add(HashingBackend(dimension=32, model_id="other")) is other  # the first one stays
    assert pool.get("other", None) is other
    assert builds == []


def test_the_pool_refuses_an_unknown_model_without_a_profile(builds: list[str]) -> None:
    pool = BackendPool(EmbedderSettings(backend="hashing"))
    with pytest.raises(NoProfileForModel, match="no profile recorded for model 'mystery'"):
        pool.get("mystery", None)
    assert builds == []


def test_the_pool_refuses_a_profile_that_builds_another_model(builds: list[str]) -> None:
    pool = BackendPool(EmbedderSettings(backend="hashing"))
    with pytest.raises(NoProfileForModel, match="profile 'hashing' builds 'hashing-3gram-64', not 'x'"):
        pool.get("x", BUILTIN_PROFILES["hashing"].model_dump())
    with pytest.raises(NoProfileForModel):  # and it did not keep the wrong one under that id
        pool.get("x", None)
    with pytest.raises(NoProfileForModel):
        pool.get("hashing-3gram-64", None)  # nor under its own id
