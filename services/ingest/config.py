"""Ingest-service settings (env prefix `HEADWATER_WEBHOOK_` for webhook intake)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ingest.webhooks import TOLERANCE_S


class WebhookSettings(BaseSettings):
    """Limits of `POST /v1/webhooks/{source}`."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_WEBHOOK_", frozen=True)

    # The whole body is buffered before its signature can be checked, by anyone who can reach the
    # port: this bounds that memory. Larger documents go through `POST /v1/documents`.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="413 above this, before buffering")
    tolerance_s: int = Field(
        default=TOLERANCE_S, ge=1, le=3600, description="how far webhook-timestamp may be from now"
    )
    rate_per_second: float = Field(default=50.0, gt=0, description="deliveries per second per source")
    rate_burst: int = Field(default=100, ge=1, description="deliveries per source at once")
    # Longer than the spec's retry schedule (about 3 days), so a late retry of a delivery whose 202 was
    # lost is still recognised; rows are small (source, id, digest, times).
    delivery_retention_s: int = Field(default=7 * 24 * 3600, ge=TOLERANCE_S, description="webhook-id memory")
    prune_interval_s: int = Field(default=600, ge=1, description="how often old deliveries are forgotten")

    @model_validator(mode="after")
    def _remember_ids_longer_than_a_capture_stays_valid(self) -> WebhookSettings:
        if self.delivery_retention_s < self.tolerance_s:
            raise ValueError("HEADWATER_WEBHOOK_DELIVERY_RETENTION_S must be at least the tolerance")
        return self
