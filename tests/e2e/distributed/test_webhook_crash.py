"""A signed webhook accepted by the distributed ingest service survives a SIGKILL of that process right
after its 202, becomes searchable exactly once, and the sender's retry after the restart is
acknowledged without being processed again (reliability test plan, row 22)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from headwater.kernel.postgres import connect
from headwater.stack.pipeline import LocalPipeline
from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore
from services.ingest.webhooks import new_secret, register_source, sign
from tests.e2e.distributed.audit import Latest, audit, snapshot
from tests.e2e.distributed.conftest import pipeline_lag, search, wait_for


def _post_signed(pipeline: LocalPipeline, key: bytes, body: bytes, webhook_id: str) -> httpx.Response:
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }
    return httpx.post(f"{pipeline.url('ingest')}/v1/webhooks/crm", content=body, headers=headers, timeout=30)


def test_an_accepted_webhook_survives_an_ingest_crash_right_after_the_202(
    make_pipeline: Callable[..., LocalPipeline], postgres_url: str
) -> None:
    pipeline = make_pipeline()
    key = new_secret()
    # Registered before the services start, in the schema they share (as `headwater webhooks create` would).
    store = PostgresWebhookStore(
        lambda: connect(postgres_url, schema=pipeline.env["HEADWATER_DATABASE_SCHEMA"])
    )
    store.ensure_schema()
    store.create_source(register_source(name="crm", tenant="acme", key=key, now=datetime.now(UTC)))
    store.close()
    pipeline.start_all()

    # No version in the body: it defaults to the arrival time, so processing it twice would show as a
    # second version in the index.
    body = json.dumps({"document_id": "memo", "text": "The heron nests by the weir."}).encode()
    accepted = _post_signed(pipeline, key, body, "msg_crash")
    pipeline.kill("ingest", signal.SIGKILL)  # nothing after the 202 gets a chance to run
    assert accepted.status_code == 202, accepted.text
    version = accepted.json()["version"]

    pipeline.start("ingest")
    pipeline.wait_http("ingest")
    retried = _post_signed(pipeline, key, body, "msg_crash")  # the sender never saw the 202
    assert retried.status_code == 202, retried.text
    assert retried.json() == accepted.json()

    wait_for(
        lambda: any(h["document_id"] == "memo" for h in search(pipeline, "acme", "heron nests weir")),
        what="the webhook's document to be searchable",
    )
    wait_for(lambda: pipeline_lag(pipeline) == 0, timeout_s=180, what="every stage to catch up")
    hits = [h for h in search(pipeline, "acme", "heron nests weir") if h["document_id"] == "memo"]
    assert {h["version"] for h in hits} == {version}
    assert len({h["chunk_id"] for h in hits}) == len(hits)

    pipeline.kill("index-node", signal.SIGTERM)  # releases the embedded index so we can read it
    points = snapshot(pipeline.home / "index", "headwater_chunks", ["acme"])
    result = audit(points, {("acme", "memo"): Latest(version, False)})
    assert result.documents == 1 and result.clean, result
    # Exactly once: no other version of the document was ever written, live or soft-deleted.
    assert {p["doc_version"] for p in points.values()} == {version}
