"""Webhook sources and deliveries on real Postgres: the store contract, concurrent first sights of one
delivery, reconnecting, and the `headwater webhooks` commands."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.kernel.postgres import connect
from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore
from services.ingest.errors import WebhookError, WebhookStoreUnavailable
from services.ingest.ports import WebhookStore
from services.ingest.webhooks import format_secret, new_secret, parse_secret, register_source, sign, verify
from tests.unit.ingest.webhook_store_contract import SCENARIOS


@pytest.fixture
def open_store(
    pg: psycopg.Connection[Any], postgres_url: str, pg_schema: str
) -> Iterator[Callable[[], PostgresWebhookStore]]:
    """Stores on their own connections in the test's schema (`pg` creates it and drops it after)."""
    made: list[PostgresWebhookStore] = []

    def factory() -> PostgresWebhookStore:
        s = PostgresWebhookStore(lambda: connect(postgres_url, schema=pg_schema))
        s.ensure_schema()
        made.append(s)
        return s

    yield factory
    for s in made:
        s.close()


@pytest.fixture
def store(open_store: Callable[[], PostgresWebhookStore]) -> PostgresWebhookStore:
    return open_store()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_postgres_webhook_store(
    scenario: Callable[[WebhookStore], None], store: PostgresWebhookStore
) -> None:
    scenario(store)


def test_concurrent_first_sights_of_one_delivery_agree(
    open_store: Callable[[], PostgresWebhookStore],
) -> None:
    """Two replicas receiving the same delivery at once both read the one row that won."""
    stores = [open_store() for _ in range(4)]
    now = datetime.now(UTC)
    seen: list[datetime] = []
    barrier = threading.Barrier(len(stores))

    def first_sight(i: int) -> None:
        barrier.wait()
        delivery = stores[i].begin_delivery(
            "crm", "msg_race", body_sha256=hashlib.sha256(b"x").digest(), at=now + timedelta(seconds=i)
        )
        seen.append(delivery.received_at)

    threads = [threading.Thread(target=first_sight, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(seen) == len(stores) and len(set(seen)) == 1


def test_the_store_reconnects_after_the_server_drops_its_connection(
    store: PostgresWebhookStore, pg: psycopg.Connection[Any]
) -> None:
    store.create_source(register_source(name="crm", tenant="acme", key=new_secret(), now=datetime.now(UTC)))
    assert store._conn is not None
    pg.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))

    source = store.get_source("crm")
    assert source is not None and source.tenant == "acme"


def test_an_unreachable_database_is_unavailable_not_an_open_door() -> None:
    def refuse() -> psycopg.Connection[Any]:
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(WebhookStoreUnavailable) as caught:
        PostgresWebhookStore(refuse).get_source("crm")
    assert caught.value.status == 503


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli(postgres_url: str, pg_schema: str, pg: psycopg.Connection[Any]) -> Callable[..., Any]:
    runner = CliRunner()
    env = {"HEADWATER_DATABASE_URL": postgres_url, "HEADWATER_DATABASE_SCHEMA": pg_schema}

    def invoke(*args: str, ok: bool = True, stdin: str | None = None) -> Any:
        result = runner.invoke(app, ["webhooks", *args], env=env, input=stdin)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return invoke


def _verifies(key_text: str, source: PostgresWebhookStore, name: str) -> bool:
    """Whether a delivery signed with `key_text` now verifies against the stored source."""
    now = datetime.now(UTC)
    stored = source.get_source(name)
    assert stored is not None
    body, ts = b'{"document_id": "d1", "text": "hi"}', int(now.timestamp())
    headers = {
        "webhook-id": "msg_cli",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(parse_secret(key_text), webhook_id="msg_cli", timestamp=ts, body=body),
    }
    try:
        verify(headers, body, keys=stored.active_keys(now), now=now)
    except WebhookError:
        return False
    return True


def test_webhooks_create_rotate_retire_list(cli: Callable[..., Any], store: PostgresWebhookStore) -> None:
    first = cli("create", "crm", "--tenant", "acme").stdout.strip()  # the secret alone on stdout
    assert first.startswith("whsec_") and _verifies(first, store, "crm")

    second = cli("rotate", "crm", "--keep-old-for", "1h").stdout.strip()
    assert second.startswith("whsec_") and second != first
    assert _verifies(first, store, "crm") and _verifies(second, store, "crm")  # the overlap

    third = cli("rotate", "crm", "--keep-old-for", "0").stdout.strip()
    assert _verifies(third, store, "crm")
    assert not _verifies(first, store, "crm") and not _verifies(second, store, "crm")

    listed = [json.loads(line) for line in cli("list", "--json").stdout.splitlines()]
    assert [(s["source"], s["tenant"], len(s["secrets"])) for s in listed] == [("crm", "acme", 3)]
    assert [s["active"] for s in listed[0]["secrets"]] == [False, False, True]
    table = cli("list").stdout
    assert "crm" in table and all(k.removeprefix("whsec_")[:12] not in table for k in (first, second, third))

    cli("retire", "crm")
    assert not _verifies(third, store, "crm")
    cli("retire", "erp", ok=False)
    cli("rotate", "erp", ok=False)


def test_webhooks_take_a_secret_the_sender_generated(
    cli: Callable[..., Any], store: PostgresWebhookStore
) -> None:
    theirs = format_secret(new_secret())

    created = cli("create", "wiki", "--tenant", "acme", "--secret-stdin", stdin=theirs + "\n")

    assert theirs not in created.stdout and theirs not in created.output  # not echoed back
    assert _verifies(theirs, store, "wiki")
    cli("create", "erp", "--tenant", "acme", "--secret-stdin", stdin="whsec_c2hvcnQ=\n", ok=False)  # 5 bytes


def test_webhooks_create_refuses_bad_input(cli: Callable[..., Any]) -> None:
    cli("create", "CRM!", "--tenant", "acme", ok=False)
    cli("create", "crm", "--tenant", "acme/evil", ok=False)
    cli("create", "crm", "--tenant", "acme")
    cli("create", "crm", "--tenant", "globex", ok=False)  # the name is taken
    cli("rotate", "crm", "--keep-old-for", "soon", ok=False)
    assert [json.loads(line)["tenant"] for line in cli("list", "--json").stdout.splitlines()] == ["acme"]
