from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import numpy as np
import pytest

from headwater.kernel.http_retry import RetryPolicy, retry_after
from services.embedder.adapters.fake import HashingBackend
from services.embedder.adapters.tei import TeiBackend
from services.embedder.errors import PermanentEmbeddingError, TransientEmbeddingError

URL = "http://tei.test"
DIM = 16


class FakeTei:
    """Implements TEI's documented /embed and /info shapes; `failures` are served before real answers."""

    def __init__(
        self, *, max_client_batch_size: int = 32, failures: list[httpx.Response | Exception] | None = None
    ):
        self.max_client_batch_size = max_client_batch_size
        self.failures = list(failures or [])
        self.batches: list[list[str]] = []  # inputs of every /embed request, served or not
        self.model = HashingBackend(dimension=DIM)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/info":
            return httpx.Response(
                200, json={"model_id": "BAAI/bge-small", "model_sha": "abc", "max_input_length": 512}
            )
        assert (request.method, request.url.path) == ("POST", "/embed")
        body = json.loads(request.content)
        assert set(body) == {"inputs", "normalize", "truncate"}
        assert body["normalize"] is True
        assert body["truncate"] is True
        assert isinstance(body["inputs"], list)
        assert all(isinstance(t, str) for t in body["inputs"])
        self.batches.append(body["inputs"])
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        if len(body["inputs"]) > self.max_client_batch_size:
            message = (
                f"batch size {len(body['inputs'])} > maximum allowed batch size {self.max_client_batch_size}"
            )
            return httpx.Response(413, json={"error": message, "error_type": "Validation"})
        return httpx.Response(200, json=self.model.embed(body["inputs"]).tolist())


def _error(status: int, kind: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": f"{kind} happened", "error_type": kind}, headers=headers)


def _backend(server: FakeTei, sleeps: list[float], *, dimension: int | None = None) -> TeiBackend:
    policy = RetryPolicy(max_attempts=4, backoff=0.5, sleep=sleeps.append, random=lambda: 0.5)
    client = httpx.Client(transport=httpx.MockTransport(server))
    return TeiBackend(URL, client=client, retry=policy, dimension=dimension)


def test_embeds_in_client_batches_and_keeps_order() -> None:
    server, sleeps = FakeTei(), list[float]()
    texts = [f"text number {i}" for i in range(70)]
    rows = _backend(server, sleeps).embed(texts)
    assert [len(b) for b in server.batches] == [32, 32, 6]
    assert np.allclose(rows, HashingBackend(dimension=DIM).embed(texts), atol=1e-6)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert rows.dtype == np.float32
    assert sleeps == []


def test_413_splits_the_batch_and_remembers_the_smaller_size() -> None:
    server, sleeps = FakeTei(max_client_batch_size=10), list[float]()
    backend = _backend(server, sleeps)
    texts = [f"t{i}" for i in range(32)]
    rows = backend.embed(texts)
    assert np.allclose(rows, HashingBackend(dimension=DIM).embed(texts), atol=1e-6)
    assert [len(b) for b in server.batches] == [32, 16, 8, 8, 16, 8, 8]
    server.batches.clear()
    backend.embed(texts[:20])
    assert [len(b) for b in server.batches] == [8, 8, 4]  # no more refused requests
    assert sleeps == []


def test_429_honours_retry_after_then_succeeds() -> None:
    server = FakeTei(failures=[_error(429, "Overloaded", {"Retry-After": "3"})])
    sleeps: list[float] = []
    rows = _backend(server, sleeps).embed(["a", "b"])
    assert rows.shape == (2, DIM)
    assert sleeps == [3.0]
    assert len(server.batches) == 2


@pytest.mark.parametrize("status", [424, 500, 503])
def test_transient_statuses_are_retried_with_jittered_exponential_backoff(status: int) -> None:
    server = FakeTei(failures=[_error(status, "Backend"), _error(status, "Backend")])
    sleeps: list[float] = []
    rows = _backend(server, sleeps).embed(["a"])
    assert rows.shape == (1, DIM)
    assert sleeps == [0.25, 0.5]  # random()=0.5 times caps 0.5 and 1.0


def test_timeouts_and_connection_errors_are_retried() -> None:
    server = FakeTei(failures=[httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])
    sleeps: list[float] = []
    assert _backend(server, sleeps).embed(["a"]).shape == (1, DIM)
    assert len(sleeps) == 2


def test_exhausted_retries_raise_a_transient_error() -> None:
    server = FakeTei(failures=[_error(503, "Unhealthy")] * 10)
    sleeps: list[float] = []
    with pytest.raises(TransientEmbeddingError, match="after 4 attempts: HTTP 503"):
        _backend(server, sleeps).embed(["a"])
    assert len(server.batches) == 4
    assert len(sleeps) == 3


def test_422_is_permanent_and_not_retried() -> None:
    server = FakeTei(failures=[_error(422, "Tokenizer")])
    sleeps: list[float] = []
    with pytest.raises(PermanentEmbeddingError, match="422: Tokenizer: Tokenizer happened"):
        _backend(server, sleeps).embed(["a"])
    assert len(server.batches) == 1
    assert sleeps == []


def test_a_single_input_refused_as_too_large_is_permanent() -> None:
    server = FakeTei(max_client_batch_size=0)
    with pytest.raises(PermanentEmbeddingError, match="413"):
        _backend(server, []).embed(["a"])


def test_model_id_from_info_and_dimension_from_a_probe() -> None:
    server = FakeTei()
    backend = _backend(server, [])
    assert backend.model_id == "tei:BAAI/bge-small@abc"
    assert backend.max_input_tokens == 512
    assert backend.dimension == DIM
    assert server.batches == [["dimension probe"]]
    configured = _backend(FakeTei(), [], dimension=DIM)
    assert configured.dimension == DIM


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (retry_after(httpx.Response(429, headers={"Retry-After": later})) or 0) <= 60
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None
