"""Moved to `headwater.observability.metrics`, which both runtimes use; kept for older imports."""

from __future__ import annotations

from headwater.observability.metrics import (
    FRESHNESS_SECONDS,
    INTAKE,
    INTAKE_TO_INDEX_SECONDS,
    serve_metrics,
)

__all__ = ["FRESHNESS_SECONDS", "INTAKE", "INTAKE_TO_INDEX_SECONDS", "serve_metrics"]
