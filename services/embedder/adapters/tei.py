"""Hugging Face text-embeddings-inference (`POST /embed`), for GPU serving."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from headwater.kernel.http_retry import RetryPolicy
from headwater.kernel.tei import TeiClient, error_text
from services.embedder.adapters.http_errors import embedder_errors
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
        self._tei = TeiClient(
            base_url,
            client=client,
            timeout=timeout,
            batch_size=max_client_batch_size,
            retry=retry,
            retry_statuses=_RETRY,
        )
        self._model_id, self._dimension, self._max_tokens = model_id, dimension, max_input_tokens
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def batch_size(self) -> int:
        return self._tei.batch_size

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
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
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
                with embedder_errors():
                    response = self._tei.get("/info")
                if response.status_code != 200:
                    raise PermanentEmbeddingError(f"TEI GET /info: HTTP {response.status_code}")
                self._info = dict(response.json())
            return self._info

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Send batches of at most `max_client_batch_size`; rows come back in input order."""
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        with embedder_errors():
            return self._tei.in_batches(texts, self._post, np.concatenate)

    def _post(self, batch: list[str]) -> Matrix | None:
        body = {"inputs": batch, "normalize": True, "truncate": True}
        response = self._tei.post("/embed", body, what=f"/embed ({len(batch)} inputs)")
        status = response.status_code
        if status == 413 and len(batch) > 1:
            return None  # split by the client
        if status != 200:
            raise PermanentEmbeddingError(f"TEI POST /embed: HTTP {status}: {error_text(response)}")
        try:
            rows = np.asarray(response.json(), dtype=np.float32)
        except (ValueError, TypeError) as exc:  # not JSON, or ragged rows
            raise PermanentEmbeddingError(f"TEI returned an unreadable body: {exc}") from exc
        if rows.ndim != 2 or rows.shape[0] != len(batch):
            raise PermanentEmbeddingError(f"TEI returned shape {rows.shape} for {len(batch)} inputs")
        return l2_normalise(rows)  # cheap, and keeps the port's promise whatever the server was told
