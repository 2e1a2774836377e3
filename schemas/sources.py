"""Source mappings users write: how rows of a captured table become documents (the CDC table mapping).

A file (`HEADWATER_CDC_MAPPINGS`, JSON or TOML) holds one `CdcMappings`. Templates name columns in
braces (`"article-{id}"`, `"{title}\\n\\n{body}"`); a column that is null renders as empty text.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.common import AclGroup, TenantId

__all__ = ["DEBEZIUM_UNAVAILABLE_VALUE", "CdcMappings", "TableMapping", "template_columns"]

DEBEZIUM_UNAVAILABLE_VALUE = "__debezium_unavailable_value"
_FIELD = re.compile(r"\{([^{}]*)\}")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
Column = Annotated[str, StringConstraints(pattern=_COLUMN.pattern)]


def template_columns(template: str) -> list[str]:
    """The columns a template names, in order; a field that is not a plain column name is refused."""
    names = _FIELD.findall(template)
    bad = [name for name in names if not _COLUMN.match(name)]
    if bad:
        raise ValueError(f"template fields must be column names, not {bad!r}")
    return names


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableMapping(_Config):
    """Which columns of one table form a document's id, tenant, text, metadata and ACL."""

    table: Annotated[str, StringConstraints(pattern=r"^[^.\s]+\.[^.\s]+$")] = Field(
        description="`schema.table`, as in the connector's table.include.list"
    )
    topic: str | None = Field(default=None, description="default: `<topic_prefix>.<schema>.<table>`")
    document_id: str = Field(description="template, e.g. `article-{id}`; unique per row")
    tenant: TenantId | None = Field(default=None, description="one tenant for every row")
    tenant_column: Column | None = Field(default=None, description="or the column holding the tenant")
    title: str | None = Field(default=None, description="template, e.g. `{title}`")
    text: str | list[Column] = Field(
        description="template (`{title}\\n\\n{body}`) or columns joined by blank lines"
    )
    content_type: Literal["text/plain", "text/markdown", "text/html"] = "text/plain"
    metadata: dict[MetadataKey, Column] = Field(default_factory=dict, description="metadata key -> column")
    acl_column: Column | None = Field(
        default=None, description="a text[] column, or text with comma-separated groups"
    )
    acl: list[AclGroup] = Field(default_factory=list, description="groups added to every document")

    @model_validator(mode="after")
    def _consistent(self) -> TableMapping:
        if (self.tenant is None) == (self.tenant_column is None):
            raise ValueError(f"{self.table}: give exactly one of `tenant` or `tenant_column`")
        for template in (self.document_id, self.title or "", *self.text_templates):
            template_columns(template)
        if not template_columns(self.document_id):
            raise ValueError(f"{self.table}: `document_id` must name at least one column")
        return self

    @property
    def text_templates(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else ["{" + column + "}" for column in self.text]

    @property
    def identity_columns(self) -> list[str]:
        """Columns that decide which document a row is."""
        return [*template_columns(self.document_id), *([self.tenant_column] if self.tenant_column else [])]

    def topic_for(self, prefix: str) -> str:
        return self.topic or f"{prefix}.{self.table}"


class CdcMappings(_Config):
    """The table mappings of one Debezium connector."""

    topic_prefix: str = Field(description="the connector's `topic.prefix`")
    source_name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "postgres"
    unavailable_value_placeholder: str = Field(
        default=DEBEZIUM_UNAVAILABLE_VALUE,
        description="the connector's `unavailable.value.placeholder` (an unchanged TOASTed value)",
    )
    tables: list[TableMapping] = Field(min_length=1)

    @model_validator(mode="after")
    def _topics_unique(self) -> CdcMappings:
        topics = [table.topic_for(self.topic_prefix) for table in self.tables]
        if len(set(topics)) != len(topics):
            raise ValueError("two table mappings read the same topic")
        return self

    def by_topic(self) -> dict[str, TableMapping]:
        return {table.topic_for(self.topic_prefix): table for table in self.tables}

    def topic_pattern(self) -> str:
        """Every table topic of the connector (`<prefix>.<schema>.<table>`), mapped or not, so a captured
        table without a mapping is noticed (dead-lettered) rather than silently left unread."""
        alternatives = [re.escape(topic) for topic in self.by_topic()]
        alternatives.append(re.escape(self.topic_prefix) + r"\.[^.]+\.[^.]+")
        return "^(?:" + "|".join(alternatives) + ")$"
