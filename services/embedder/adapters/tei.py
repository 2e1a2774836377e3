"""Hugging Face text-embeddings-inference (`POST /embed`), for GPU serving."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from services.embedder.adapters._http import RetryPolicy, embed_in_batches, send_with_retries
from services.embedder.errors import PermanentEmbeddingError
from services.embedder.ports import Matrix
from services.embedder.vectors import l2_normalise

# 424: the model failed on this batch (e.g. out of memory); 429: more requests in flight than allowed.
_RETRY = frozenset({424, 429})


class TeiBackend:
    """Client of one TEI server; splits batches the server refuses as too large (413)."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        max_client_batch_size: int = 32,
        retry: RetryPolicy | None = None,
        model_id: str | None = None,
        dimension: int | None = None,
        max_input_tokens: int | None = None,
    ) -> None:
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout)
        self._base = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self.batch_size = max_client_batch_size
        self._model_id, self._dimension, self._max_tokens = model_id, dimension, max_input_tokens
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """The configured id, else `tei:<model_id>@<model_sha>` from `GET /info`."""
        if self._model_id is None:
            info = self.info()
            sha = info.get("model_sha")
            self._model_id = f"tei:{info['model_id']}" + (f"@{sha}" if sha else "")
        return self._model_id

    @property
    def dimension(self) -> int:
        """The configured dimension, else the length of one probe embedding (`/info` does not report it)."""
        if self._dimension is None:
            self._dimension = int(self._post(["dimension probe"]).shape[1])
        return self._dimension

    @property
    def max_input_tokens(self) -> int:
        if self._max_tokens is None:
            self._max_tokens = int(self.info().get("max_input_length", 512))
        return self._max_tokens

    def info(self) -> dict[str, Any]:
        """`GET /info`, fetched once."""
        with self._lock:
            if self._info is None:
                response = send_with_retries(
                    lambda: self._client.get(f"{self._base}/info"),
                    policy=self._retry,
                    retry_statuses=_RETRY,
                    what="TEI GET /info",
                )
                if response.status_code != 200:
                    raise PermanentEmbeddingError(f"TEI GET /info: HTTP {response.status_code}")
                self._info = dict(response.json())
            return self._info

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Send batches of at most `max_client_batch_size`; rows come back in input order."""
        return embed_in_batches(self._post, texts, batch_size=self.batch_size, dimension=self._dimension)

    def _post(self, batch: list[str]) -> Matrix:
        body = {"inputs": batch, "normalize": True, "truncate": True}
        response = send_with_retries(
            lambda: self._client.post(f"{self._base}/embed", json=body),
            policy=self._retry,
            retry_statuses=_RETRY,
            what=f"TEI POST /embed ({len(batch)} inputs)",
        )
        status = response.status_code
        if status == 413 and len(batch) > 1:
            # The server's --max-client-batch-size is below ours: remember the smaller size and split.
            half = len(batch) // 2
            self.batch_size = min(self.batch_size, half)
            return np.concatenate([self._post(batch[:half]), self._post(batch[half:])])
        if status != 200:
            raise PermanentEmbeddingError(f"TEI POST /embed: HTTP {status}: {_error(response)}")
        try:
            rows = np.asarray(response.json(), dtype=np.float32)
        except (ValueError, TypeError) as exc:  # not JSON, or ragged rows
            raise PermanentEmbeddingError(f"TEI returned an unreadable body: {exc}") from exc
        if rows.ndim != 2 or rows.shape[0] != len(batch):
            raise PermanentEmbeddingError(f"TEI returned shape {rows.shape} for {len(batch)} inputs")
        return l2_normalise(rows)  # cheap, and keeps the port's promise whatever the server was told


def _error(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(payload, dict):
        return f"{payload.get('error_type', '?')}: {payload.get('error', '')}"
    return response.text[:200]
