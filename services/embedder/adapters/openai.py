"""Any OpenAI-compatible `POST /embeddings` endpoint (OpenAI, Azure-style gateways, vLLM, Ollama)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import httpx
import numpy as np
from pydantic import SecretStr

from headwater.kernel.http_retry import RetryPolicy, send_with_retries
from services.embedder.adapters.http_errors import embedder_errors
from services.embedder.errors import PermanentEmbeddingError
from services.embedder.ports import Matrix
from services.embedder.vectors import l2_normalise

_RETRY = frozenset({408, 409, 429})  # timeout, conflict and rate limit; 5xx are always retried
_AUTH = frozenset({401, 403})


class OpenAICompatibleBackend:
    """Embeddings over HTTP with a bearer key that never reaches a log line or an error message."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        model: str,
        *,
        client: httpx.Client | None = None,
        dimensions: int | None = None,
        timeout: float = 60.0,
        max_batch_size: int = 256,
        max_input_tokens: int = 8191,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client or httpx.Client(timeout=timeout)
        self._url = base_url.rstrip("/") + "/embeddings"
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._model = model
        self._dimensions = dimensions
        self._retry = retry or RetryPolicy()
        self.batch_size = max_batch_size
        self.max_input_tokens = max_input_tokens
        # A shortened embedding is a different vector space: the cache key must say so.
        self.model_id = f"openai:{model}" + (f"@{dimensions}" if dimensions else "")
        self._dimension = dimensions
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(url={self._url!r}, model_id={self.model_id!r})"

    @property
    def dimension(self) -> int:
        """The requested `dimensions`, else the length of one probe embedding."""
        with self._lock:
            if self._dimension is None:
                self._dimension = int(self._post(["dimension probe"]).shape[1])
            return self._dimension

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Send batches of at most `max_batch_size` inputs; rows come back in input order."""
        parts = [
            self._post(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        return np.concatenate(parts)

    def _post(self, batch: list[str]) -> Matrix:
        body: dict[str, object] = {"model": self._model, "input": batch, "encoding_format": "float"}
        if self._dimensions:
            body["dimensions"] = self._dimensions
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        with embedder_errors():
            response = send_with_retries(
                lambda: self._client.post(self._url, json=body, headers=headers),
                policy=self._retry,
                retry_statuses=_RETRY,
                what=f"POST {self._url} ({len(batch)} inputs)",
            )
        if response.status_code in _AUTH:
            raise PermanentEmbeddingError(f"embeddings API refused the credentials: {self._error(response)}")
        if response.status_code != 200:
            raise PermanentEmbeddingError(
                f"embeddings API: HTTP {response.status_code}: {self._error(response)}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: int(item["index"]))
            rows = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, TypeError, KeyError) as exc:
            raise PermanentEmbeddingError(f"embeddings API returned an unreadable body: {exc!r}") from exc
        if rows.ndim != 2 or rows.shape[0] != len(batch):
            raise PermanentEmbeddingError(
                f"embeddings API returned shape {rows.shape} for {len(batch)} inputs"
            )
        # OpenAI normalises; other compatible servers may not.
        return l2_normalise(rows)

    def _error(self, response: httpx.Response) -> str:
        try:
            error = response.json()["error"]
            text = f"{error.get('type')}/{error.get('code')}: {error.get('message')}"
        except (ValueError, TypeError, KeyError, AttributeError):
            text = response.text[:200]
        # Some servers echo the key they refused; it must not travel on in an exception.
        return text.replace(self._key.get_secret_value(), "***")
