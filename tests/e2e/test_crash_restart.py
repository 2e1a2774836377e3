"""SIGKILL the embedded server right after it acknowledged a burst of documents; after a restart
every acknowledged document is searchable exactly once."""

from __future__ import annotations

import os
import random
import signal
import string
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, serve_embedded

DOCS = 60


def _serve(home: Path, port: int, postgres_url: str, schema: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HEADWATER_HOME": str(home),
        "HEADWATER_DATABASE_URL": postgres_url,
        "HEADWATER_DATABASE_SCHEMA": schema,
        "HEADWATER_EMBEDDER_BACKEND": "hashing",
        "HEADWATER_ENVIRONMENT": "test",
        "HEADWATER_QUERY_AUTH": "disabled",  # this test is about durability; keys: test_http_api.py
    }
    return serve_embedded(home, port, env)


@pytest.mark.slow
def test_every_acknowledged_document_survives_a_sigkill(postgres_url: str, tmp_path: Path) -> None:
    schema = f"crash_{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = _serve(tmp_path / "home", port, postgres_url, schema)
    tokens = {f"doc-{i}": "".join(random.choices(string.ascii_lowercase, k=12)) for i in range(DOCS)}
    acknowledged = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for document_id, token in tokens.items():
            body = {
                "tenant": "acme",
                "document_id": document_id,
                "version": 1,
                "text": f"Note with marker {token}.",
            }
            if client.post("/v1/documents", json=body).status_code == 202:
                acknowledged.append(document_id)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    assert len(acknowledged) == DOCS

    server = _serve(tmp_path / "home", port, postgres_url, schema)
    try:
        lost, duplicated = set(acknowledged), []
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while lost and time.monotonic() < deadline:
                for document_id in sorted(lost):
                    # Scoped to the document, so a redacted marker cannot hide it: any live chunk counts.
                    request = {
                        "tenant": "acme",
                        "query": f"note with marker {tokens[document_id]}",
                        "mode": "sparse",
                        "top_k": 10,
                        "filters": {"document_ids": [document_id]},
                    }
                    hits = client.post("/v1/search", json=request).json()["hits"]
                    if hits:
                        lost.discard(document_id)
                        if len(hits) != 1:
                            duplicated.append(document_id)
                time.sleep(0.2)
        print(f"acknowledged={len(acknowledged)} lost={len(lost)} dup_visible={len(duplicated)}")
        assert not lost and not duplicated
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
