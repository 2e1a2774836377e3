"""The TEI reranker client against a MockTransport that implements TEI's documented `POST /rerank`, and the
local cross-encoder's refusal to load anything that is not on disk."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from headwater.kernel.http_retry import RetryPolicy
from services.query.errors import RerankerFailed, RerankerUnavailable
from services.query.rerank import CrossEncoderReranker, TeiReranker, build_reranker, local_model_dir

URL = "http://tei:8080"


class FakeTei:
    """TEI's rerank contract: `{"query", "texts", "raw_scores", "truncate", ...}` → `[{"index", "score"}]`
    sorted by score, best first; 413 above `--max-client-batch-size`; 429 when overloaded."""

    def __init__(self, *, max_batch: int = 32, overloaded: int = 0, status: int = 200) -> None:
        self.max_batch = max_batch
        self.overloaded = overloaded
        self.status = status
        self.bodies: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/rerank"
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.overloaded:
            self.overloaded -= 1
            return httpx.Response(
                429, headers={"retry-after": "0"}, json={"error": "busy", "error_type": "overloaded"}
            )
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "not a reranker", "error_type": "backend"})
        if len(body["texts"]) > self.max_batch:
            return httpx.Response(413, json={"error": "batch too large", "error_type": "validation"})
        words = set(body["query"].split())
        raw = [float(len(words & set(t.split()))) - 1.0 for t in body["texts"]]
        scores = raw if body.get("raw_scores") else [1 / (1 + 2.718281828**-r) for r in raw]
        ranked = sorted(enumerate(scores), key=lambda pair: -pair[1])
        return httpx.Response(200, json=[{"index": i, "score": s} for i, s in ranked])


def _client(server: FakeTei, **kw: object) -> TeiReranker:
    return TeiReranker(
        URL,
        client=httpx.Client(transport=httpx.MockTransport(server)),
        retry=RetryPolicy(max_attempts=3, sleep=lambda _: None),
        **kw,  # type: ignore[arg-type]
    )


TEXTS = ["red apples", "green apples and red pears", "blue sky", "red red wine"]


def test_scores_come_back_in_input_order_whatever_order_tei_ranks_them() -> None:
    server = FakeTei()
    scores = _client(server, raw_scores=True).score("red apples", TEXTS)
    assert scores == [1.0, 1.0, -1.0, 0.0]
    assert server.bodies[0] == {"query": "red apples", "texts": TEXTS, "raw_scores": True, "truncate": True}


def test_batches_over_the_servers_limit_are_split_and_the_smaller_size_remembered() -> None:
    server = FakeTei(max_batch=3)
    client = _client(server, max_client_batch_size=8)
    texts = [f"red {i}" if i % 2 else f"blue {i}" for i in range(7)]
    scores = client.score("red", texts)
    assert [round(s, 3) for s in scores] == [0.5 if i % 2 else 0.269 for i in range(7)]
    assert client.batch_size <= 3
    server.bodies.clear()
    client.score("red", texts)
    assert all(len(b["texts"]) <= 3 for b in server.bodies)  # type: ignore[arg-type]


def test_overload_is_retried() -> None:
    server = FakeTei(overloaded=2)
    assert len(_client(server).score("red", TEXTS)) == 4
    assert len(server.bodies) == 3


def test_failures_become_reranker_errors() -> None:
    with pytest.raises(RerankerFailed, match="424"):
        _client(FakeTei(status=424)).score("red", TEXTS)
    with pytest.raises(RerankerFailed, match="3 attempts"):
        _client(FakeTei(overloaded=5)).score("red", TEXTS)

    def wrong_indices(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"index": 0, "score": 1.0}])

    broken = TeiReranker(URL, client=httpx.Client(transport=httpx.MockTransport(wrong_indices)))
    with pytest.raises(RerankerFailed, match="indices"):
        broken.score("red", TEXTS)

    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    with pytest.raises(RerankerFailed, match="unreadable"):
        TeiReranker(URL, client=httpx.Client(transport=httpx.MockTransport(not_json))).score("q", ["t"])


def test_no_texts_no_request() -> None:
    server = FakeTei()
    assert _client(server).score("red", []) == []
    assert server.bodies == []


def test_cross_encoder_loads_only_from_local_files(tmp_path: Path) -> None:
    with pytest.raises(RerankerUnavailable):
        CrossEncoderReranker(tmp_path)  # an empty directory holds no model
    with pytest.raises(RerankerUnavailable):
        local_model_dir("cross-encoder/ms-marco-MiniLM-L-6-v2")  # a hub name is not a local model
    with pytest.raises(RerankerUnavailable):
        build_reranker("cross-encoder", model=str(tmp_path / "missing"))
    assert build_reranker("none") is None
    assert isinstance(build_reranker("tei", tei_url=URL), TeiReranker)


@pytest.mark.slow
def test_cross_encoder_scores_pairs_from_a_local_model(tmp_path: Path) -> None:
    # No reranker weights ship offline, so build one on disk from the bundled MiniLM encoder: its
    # classification head is untrained, which is enough to prove loading and per-pair scoring.
    from sentence_transformers import CrossEncoder

    from headwater.kernel.model_files import minilm_path, offline

    offline()
    CrossEncoder(str(minilm_path()), num_labels=1, device="cpu").save(str(tmp_path / "ce"))
    reranker = build_reranker("cross-encoder", model=str(tmp_path / "ce"))
    assert isinstance(reranker, CrossEncoderReranker)
    forward = reranker.score("red apples", ["red apples", "blue sky", "wine"])
    backward = reranker.score("red apples", ["wine", "blue sky", "red apples"])
    assert len(forward) == 3 and forward == pytest.approx(backward[::-1], abs=1e-5)
    assert len(set(forward)) == 3  # each pair is scored on its own text
    assert reranker.score("red apples", []) == []
