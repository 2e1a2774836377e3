from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pytest

from headwater.kernel.http_retry import RetryPolicy
from services.embedder.adapters.fake import HashingBackend
from services.embedder.adapters.openai import OpenAICompatibleBackend
from services.embedder.errors import PermanentEmbeddingError, TransientEmbeddingError

BASE = "https://api.example.test/v1"
KEY = "sk-test-0123456789abcdef"
DIM = 12


class FakeOpenAI:
    """Implements the documented /embeddings request and response shapes; `failures` are served first."""

    def __init__(self, *, failures: list[httpx.Response] | None = None, reverse: bool = True) -> None:
        self.failures = list(failures or [])
        self.reverse = reverse  # answer data in reverse index order: clients must sort by index
        self.bodies: list[dict[str, object]] = []
        self.model = HashingBackend(dimension=DIM)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, str(request.url)) == ("POST", f"{BASE}/embeddings")
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if presented != KEY:  # echo the refused key, as some servers do: the client must mask it
            return _error(401, "invalid_request_error", "invalid_api_key", f"Incorrect API key: {presented}")
        body = json.loads(request.content)
        self.bodies.append(body)
        assert (
            {"model", "input", "encoding_format"}
            <= set(body)
            <= {"model", "input", "encoding_format", "dimensions"}
        )
        assert body["encoding_format"] == "float"
        assert isinstance(body["input"], list)
        if self.failures:
            return self.failures.pop(0)
        rows = self.model.embed(body["input"]).tolist()
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        if self.reverse:
            data.reverse()
        usage = {"prompt_tokens": 3, "total_tokens": 3}
        return httpx.Response(
            200, json={"object": "list", "data": data, "model": body["model"], "usage": usage}
        )


def _error(
    status: int, kind: str, code: str | None, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "type": kind, "code": code}}, headers=headers
    )


def _backend(
    server: FakeOpenAI, sleeps: list[float], *, key: str = KEY, **kw: int
) -> OpenAICompatibleBackend:
    policy = RetryPolicy(max_attempts=3, backoff=1.0, sleep=sleeps.append, random=lambda: 1.0)
    client = httpx.Client(transport=httpx.MockTransport(server))
    return OpenAICompatibleBackend(BASE, key, "text-embedding-3-small", client=client, retry=policy, **kw)


def test_rows_are_sorted_by_index_and_normalised() -> None:
    server = FakeOpenAI()
    texts = ["first text", "second one", "third"]
    rows = _backend(server, []).embed(texts)
    assert np.allclose(rows, HashingBackend(dimension=DIM).embed(texts), atol=1e-6)
    assert server.bodies == [{"model": "text-embedding-3-small", "input": texts, "encoding_format": "float"}]


def test_dimensions_are_sent_and_part_of_the_model_id() -> None:
    server = FakeOpenAI()
    backend = _backend(server, [], dimensions=DIM)
    backend.embed(["a"])
    assert server.bodies[0]["dimensions"] == DIM
    assert backend.model_id == "openai:text-embedding-3-small@12"
    assert backend.dimension == DIM


def test_dimension_comes_from_a_probe_when_not_configured() -> None:
    server = FakeOpenAI()
    assert _backend(server, []).dimension == DIM
    assert len(server.bodies) == 1


def test_batches_are_capped() -> None:
    server = FakeOpenAI()
    _backend(server, [], max_batch_size=4).embed([str(i) for i in range(10)])
    assert [len(b["input"]) for b in server.bodies] == [4, 4, 2]  # type: ignore[arg-type]


def test_429_honours_retry_after() -> None:
    limited = _error(429, "requests", "rate_limit_exceeded", "Rate limit reached", {"Retry-After": "20"})
    server, sleeps = FakeOpenAI(failures=[limited]), list[float]()
    assert _backend(server, sleeps).embed(["a"]).shape == (1, DIM)
    assert sleeps == [20.0]


def test_5xx_is_retried_then_succeeds_and_exhaustion_is_transient() -> None:
    server, sleeps = FakeOpenAI(failures=[_error(502, "server_error", None, "bad gateway")]), list[float]()
    assert _backend(server, sleeps).embed(["a"]).shape == (1, DIM)
    assert sleeps == [1.0]
    server = FakeOpenAI(failures=[_error(500, "server_error", None, "boom")] * 5)
    with pytest.raises(TransientEmbeddingError, match="after 3 attempts"):
        _backend(server, []).embed(["a"])
    assert len(server.bodies) == 3


def test_400_is_permanent_without_retry() -> None:
    server = FakeOpenAI(failures=[_error(400, "invalid_request_error", None, "input too long")])
    sleeps: list[float] = []
    with pytest.raises(PermanentEmbeddingError, match="input too long"):
        _backend(server, sleeps).embed(["a"])
    assert sleeps == []
    assert len(server.bodies) == 1


def test_auth_failure_is_permanent_and_never_shows_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = _backend(FakeOpenAI(), [], key="sk-wrong-key-000")
    with pytest.raises(PermanentEmbeddingError, match="credentials") as info:
        backend.embed(["a"])
    assert "Incorrect API key: ***" in str(info.value)
    assert "sk-wrong-key-000" not in repr(backend)
    assert "sk-wrong-key-000" not in caplog.text


def test_an_echoed_key_is_masked_in_errors() -> None:
    echo = _error(403, "permission_error", None, f"key {KEY} may not use this model")
    with pytest.raises(PermanentEmbeddingError) as info:
        _backend(FakeOpenAI(failures=[echo]), []).embed(["a"])
    assert KEY not in str(info.value)
    assert "***" in str(info.value)
