"""The shared HTTP retry's errors, said in the embedding stage's terms."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from headwater.kernel.http_retry import BadEndpoint, RetriesExhausted
from services.embedder.errors import PermanentEmbeddingError, TransientEmbeddingError


@contextmanager
def embedder_errors() -> Iterator[None]:
    """Exhausted retries may pass later (transient); an unusable URL never will (permanent)."""
    try:
        yield
    except RetriesExhausted as exc:
        raise TransientEmbeddingError(str(exc)) from exc
    except BadEndpoint as exc:
        raise PermanentEmbeddingError(str(exc)) from exc
