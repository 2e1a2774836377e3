"""Second-stage reranking behind one port: a TEI server's `POST /rerank`, or a local cross-encoder.

Neither ships with Headwater: TEI is a server somebody runs, and a cross-encoder is loaded only from a
local directory or an installed package that carries its weights (nothing is downloaded at run time).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from headwater.kernel.http_retry import BadEndpoint, RetriesExhausted, RetryPolicy
from headwater.kernel.model_files import offline
from headwater.kernel.tei import TeiClient, error_text
from services.query.errors import RerankerFailed, RerankerUnavailable

# 429: more requests in flight than the server allows. (424 means the model is not a reranker or failed on
# this input: retrying does not help.)
_RETRY = frozenset({429})


class Reranker(Protocol):
    """Scores (query, text) pairs jointly; higher is more relevant."""

    @property
    def name(self) -> str: ...

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in input order."""
        ...


class TeiReranker:
    """Client of text-embeddings-inference serving a reranker model (`POST /rerank`)."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        max_client_batch_size: int = 32,
        raw_scores: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._tei = TeiClient(
            base_url,
            client=client,
            timeout=timeout,
            batch_size=max_client_batch_size,
            retry=retry or RetryPolicy(max_attempts=3),
            retry_statuses=_RETRY,
        )
        self._raw = raw_scores

    @property
    def name(self) -> str:
        return f"tei:{self._tei.base_url}"

    @property
    def batch_size(self) -> int:
        return self._tei.batch_size

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        try:
            return self._tei.in_batches(texts, lambda batch: self._post(query, batch), _concatenated)
        except (RetriesExhausted, BadEndpoint) as exc:
            raise RerankerFailed(str(exc)) from exc

    def _post(self, query: str, texts: list[str]) -> list[float] | None:
        body = {"query": query, "texts": texts, "raw_scores": self._raw, "truncate": True}
        response = self._tei.post("/rerank", body, what=f"/rerank ({len(texts)} texts)")
        if response.status_code == 413 and len(texts) > 1:
            return None  # split by the client
        if response.status_code != 200:
            raise RerankerFailed(f"TEI POST /rerank: HTTP {response.status_code}: {error_text(response)}")
        return _scores_by_index(response, len(texts))


def _concatenated(parts: list[list[float]]) -> list[float]:
    return [score for part in parts for score in part]


def _scores_by_index(response: httpx.Response, expected: int) -> list[float]:
    """TEI answers `[{"index": i, "score": s}, ...]` sorted by score; put them back in input order."""
    try:
        rows: Any = response.json()
        found = {int(row["index"]): float(row["score"]) for row in rows}
    except (ValueError, TypeError, KeyError) as exc:
        raise RerankerFailed(f"TEI returned an unreadable rerank body: {exc}") from exc
    if sorted(found) != list(range(expected)):
        raise RerankerFailed(f"TEI ranked indices {sorted(found)[:5]}... for {expected} texts")
    return [found[i] for i in range(expected)]


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local directory (weights never downloaded)."""

    def __init__(self, model_dir: Path, *, device: str = "cpu", batch_size: int = 32) -> None:
        if not (model_dir / "config.json").is_file():
            raise RerankerUnavailable(f"no cross-encoder model in {model_dir}")
        offline()
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(str(model_dir), device=device)
        self._batch_size = batch_size
        self._name = f"cross-encoder:{model_dir.name}"

    @property
    def name(self) -> str:
        return self._name

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scores = self._model.predict(
            [(query, t) for t in texts], batch_size=self._batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]


def local_model_dir(spec: str) -> Path:
    """A model directory from a path, or from an installed package that ships one (a module with
    `get_model_path()`, or a `model/` folder beside its `__init__`)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    try:
        module = importlib.import_module(spec)
    except (ImportError, ValueError, TypeError) as exc:
        raise RerankerUnavailable(f"{spec!r} is neither a directory nor an installed model package") from exc
    getter = getattr(module, "get_model_path", None)
    if callable(getter):
        return Path(str(getter()))
    return Path(str(module.__file__)).parent / "model"


def build_reranker(
    kind: str, *, tei_url: str | None = None, model: str | None = None, timeout: float = 30.0
) -> Reranker | None:
    """The configured reranker, None for `none`; RerankerUnavailable when its model is not here."""
    if kind == "tei" and tei_url:
        return TeiReranker(tei_url, timeout=timeout)
    if kind == "cross-encoder" and model:
        return CrossEncoderReranker(local_model_dir(model))
    if kind == "none":
        return None
    raise RerankerUnavailable(f"reranker {kind!r} is not configured")
