"""The HTTP side of a text-embeddings-inference (TEI) server, shared by the embedding backend
(`POST /embed`) and the reranker (`POST /rerank`): one session, the shared retry policy, TEI's error
bodies, and the halving of a batch the server refuses as too large (413)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import httpx

from headwater.kernel.http_retry import RetryPolicy, send_with_retries

_Rows = TypeVar("_Rows")


class TeiClient:
    """One TEI server; `batch_size` shrinks, once for all callers, when the server's own limit is lower."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        batch_size: int = 32,
        retry: RetryPolicy | None = None,
        retry_statuses: Collection[int] = frozenset({429}),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)
        self._retry = retry or RetryPolicy()
        self._retry_statuses = frozenset(retry_statuses)
        self._lock = threading.Lock()
        self.batch_size = batch_size

    def get(self, path: str) -> httpx.Response:
        return self._send(lambda: self._client.get(self.base_url + path), what=f"TEI GET {path}")

    def post(self, path: str, body: dict[str, Any], *, what: str) -> httpx.Response:
        return self._send(lambda: self._client.post(self.base_url + path, json=body), what=f"TEI POST {what}")

    def in_batches(
        self,
        items: Sequence[str],
        send: Callable[[list[str]], _Rows | None],
        join: Callable[[list[_Rows]], _Rows],
    ) -> _Rows:
        """`send` each batch of at most `batch_size`; a batch it answers None for (the server said 413) is
        halved and the smaller size kept. Results come back in input order."""
        parts: list[_Rows] = []
        start = 0
        while start < len(items):
            batch = list(items[start : start + self.batch_size])
            parts.append(self._sent_or_split(batch, send, join))
            start += len(batch)
        return join(parts)

    def _sent_or_split(
        self,
        batch: list[str],
        send: Callable[[list[str]], _Rows | None],
        join: Callable[[list[_Rows]], _Rows],
    ) -> _Rows:
        rows = send(batch)
        if rows is not None:
            return rows
        half = len(batch) // 2
        with self._lock:  # the server's --max-client-batch-size is below ours: remember it
            self.batch_size = max(1, min(self.batch_size, half))
        return join(
            [self._sent_or_split(batch[:half], send, join), self._sent_or_split(batch[half:], send, join)]
        )

    def _send(self, send: Callable[[], httpx.Response], *, what: str) -> httpx.Response:
        return send_with_retries(send, policy=self._retry, retry_statuses=self._retry_statuses, what=what)


def error_text(response: httpx.Response) -> str:
    """TEI's `{"error", "error_type"}` body in one line, else the start of the body."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(payload, dict):
        return f"{payload.get('error_type', '?')}: {payload.get('error', '')}"
    return response.text[:200]
