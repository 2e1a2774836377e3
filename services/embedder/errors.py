"""Errors of the embedding stage; adapters translate httpx, torch and onnxruntime failures into these."""

from __future__ import annotations


class EmbedderError(Exception):
    """Root of every embedding-stage error."""


class TransientEmbeddingError(EmbedderError):
    """The backend failed in a way that may pass on retry (overload, timeout, 5xx); retry the message."""


class PermanentEmbeddingError(EmbedderError):
    """The input or configuration is wrong (bad text, bad key, bad vector); retrying will not help."""


class CacheUnavailableError(EmbedderError):
    """The embedding cache could not be read or written; the stage embeds without it."""


class UnknownProfile(EmbedderError, ValueError):
    """A model profile name that neither the built-ins nor the profiles file defines (a bad value, as a
    command-line or settings value is)."""


class NoProfileForModel(PermanentEmbeddingError):
    """A collection whose model this process cannot build: its profile was never recorded."""
