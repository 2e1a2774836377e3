"""The embedded runtime: every stage in one process (`bootstrap.build` makes the parts, `EmbeddedHeadwater`
runs them, `http_app.create_app` serves them)."""

from headwater.runtime.embedded.bootstrap import Components, build
from headwater.runtime.embedded.runtime import EmbeddedHeadwater, stage_handlers

__all__ = ["Components", "EmbeddedHeadwater", "build", "stage_handlers"]
