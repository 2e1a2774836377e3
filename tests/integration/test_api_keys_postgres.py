"""API keys on real Postgres: the store contract, reconnecting after a server-side disconnect, and the
`headwater keys` commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.kernel.postgres import connect
from headwater.kernel.ratelimit import RateLimit
from services.query.access import authenticate, issue_key, parse_token
from services.query.adapters.keys_postgres import PostgresKeyStore
from services.query.errors import KeyStoreError, Unauthenticated
from services.query.ports import KeyStore
from tests.unit.query.key_store_contract import SCENARIOS


@pytest.fixture
def store(pg: psycopg.Connection[Any], postgres_url: str, pg_schema: str) -> Iterator[PostgresKeyStore]:
    """A store on its own connection in the test's schema (`pg` creates the schema and drops it after)."""
    s = PostgresKeyStore(lambda: connect(postgres_url, schema=pg_schema))
    s.ensure_schema()
    yield s
    s.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_postgres_key_store(scenario: Callable[[KeyStore], None], store: PostgresKeyStore) -> None:
    scenario(store)


def test_only_the_hash_of_the_secret_reaches_the_database(
    store: PostgresKeyStore, pg: psycopg.Connection[Any]
) -> None:
    key, token = issue_key(tenant="acme", acl_groups=["hr"], now=datetime.now(UTC))
    store.add(key)

    (row,) = pg.execute("SELECT row_to_json(k)::text FROM api_keys AS k").fetchall()
    secret = token.split("_", 2)[2]
    assert secret not in row[0] and token not in row[0]
    assert key.key_id in row[0]


def test_the_store_reconnects_after_the_server_drops_its_connection(
    store: PostgresKeyStore, pg: psycopg.Connection[Any]
) -> None:
    key, token = issue_key(tenant="acme", now=datetime.now(UTC))
    store.add(key)
    assert store._conn is not None
    pg.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))

    assert authenticate(token, keys=store).key_id == key.key_id


def test_an_unreachable_database_is_a_key_store_error_not_an_open_door() -> None:
    def refuse() -> psycopg.Connection[Any]:
        raise psycopg.OperationalError("connection refused")

    store = PostgresKeyStore(refuse)
    _, token = issue_key(tenant="acme", now=datetime.now(UTC))

    with pytest.raises(KeyStoreError):
        authenticate(token, keys=store)


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli(postgres_url: str, pg_schema: str, pg: psycopg.Connection[Any]) -> Callable[..., Any]:
    runner = CliRunner()
    env = {"HEADWATER_DATABASE_URL": postgres_url, "HEADWATER_DATABASE_SCHEMA": pg_schema}

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, ["keys", *args], env=env)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return invoke


def test_keys_create_list_revoke(cli: Callable[..., Any], postgres_url: str, pg_schema: str) -> None:
    created = cli(
        "create", "--tenant", "acme", "--acl", "hr", "--acl", "finance", "--rate", "5", "--label", "app"
    )
    token = created.stdout.strip()  # the key alone on stdout, so scripts can capture it
    assert parse_token(token) is not None
    store = PostgresKeyStore(lambda: connect(postgres_url, schema=pg_schema))

    caller = authenticate(token, keys=store)
    assert (caller.tenant, caller.acl_groups, caller.rate_limit) == (
        "acme",
        ("finance", "hr"),
        RateLimit(5, 10),
    )

    other = cli("create", "--tenant", "globex").stdout.strip().splitlines()[-1]
    listed = [json.loads(line) for line in cli("list", "--json").stdout.splitlines()]
    assert {row["tenant"] for row in listed} == {"acme", "globex"}
    assert all(row["revoked_at"] is None for row in listed)
    assert token.split("_", 2)[2] not in cli("list").stdout  # listing never shows a secret
    acme_only = [json.loads(line) for line in cli("list", "--json", "--tenant", "acme").stdout.splitlines()]
    assert [row["key_id"] for row in acme_only] == [caller.key_id]
    assert acme_only[0]["label"] == "app" and acme_only[0]["rate_per_second"] == 5.0

    cli("revoke", caller.key_id)
    with pytest.raises(Unauthenticated):
        authenticate(token, keys=store)
    assert authenticate(other, keys=store).tenant == "globex"  # other keys are untouched
    cli("revoke", "0" * 16, ok=False)
    store.close()


def test_keys_create_refuses_bad_input(cli: Callable[..., Any]) -> None:
    cli("create", "--tenant", "acme/evil", ok=False)
    cli("create", "--tenant", "acme", "--burst", "3", ok=False)
    cli("create", "--tenant", "acme", "--rate", "0", ok=False)
    assert cli("list", "--json").stdout.strip() == ""
