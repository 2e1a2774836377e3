"""`headwater keys create|revoke|list`: the query API's keys, in the runtime's Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from headwater.cli.common import HomeOpt, console, found, print_records, show_secret_once

if TYPE_CHECKING:
    from services.query.adapters.keys_postgres import PostgresKeyStore
    from services.query.ports import ApiKey

keys_app = typer.Typer(no_args_is_help=True, help="API keys of the query API (each bound to a tenant).")


@contextmanager
def _key_store(home: Path) -> Iterator[PostgresKeyStore]:
    """The key store of the runtime at `home`: HEADWATER_DATABASE_URL, else its embedded Postgres."""
    from headwater.cli.common import state_store
    from services.query.adapters.keys_postgres import PostgresKeyStore

    with state_store(home, PostgresKeyStore) as store:
        yield store


@keys_app.command()
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="the only tenant the key can search")],
    acl: Annotated[
        list[str] | None, typer.Option("--acl", help="an ACL group the key may read (repeatable)")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="requests per second (default: the server's)")
    ] = None,
    burst: Annotated[
        int | None, typer.Option("--burst", min=1, help="requests at once (default: two seconds' worth)")
    ] = None,
    label: Annotated[str, typer.Option(help="what the key is for, shown by `keys list`")] = "",
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from headwater.kernel.ratelimit import RateLimit
    from services.query.access import issue_key

    if burst is not None and rate is None:
        raise typer.BadParameter("--burst needs --rate")
    try:
        key, token = issue_key(
            tenant=tenant,
            acl_groups=acl or [],
            now=datetime.now(UTC),
            rate_limit=RateLimit.of(rate, burst) if rate is not None else None,
            label=label,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with _key_store(home) as store:
        store.add(key)
    groups = ", ".join(key.acl_groups) or "none (public documents only)"
    console.print(f"key {key.key_id} for tenant {key.tenant}; ACL groups: {groups}")
    show_secret_once(token, what="key")


@keys_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="the id `keys create` printed (hw_<id>_…)")],
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Revoke a key: its next request is refused with 401."""
    with _key_store(home) as store:
        key = found(store.revoke(key_id, at=datetime.now(UTC)), f"no key {key_id}")
    assert key.revoked_at is not None
    console.print(f"key {key.key_id} (tenant {key.tenant}) revoked at {key.revoked_at.isoformat()}")


@keys_app.command(name="list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per key")] = False,
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Every key with its tenant, groups, rate limit and state (never a secret)."""
    with _key_store(home) as store:
        keys = store.list_keys(tenant=tenant)
    print_records(
        keys,
        as_json=as_json,
        to_json=_as_json,
        columns=("key id", "tenant", "ACL groups", "rate", "label", "created", "revoked"),
        row=lambda k: (
            k.key_id,
            k.tenant,
            ", ".join(k.acl_groups),
            f"{k.rate_limit.per_second:g}/s, burst {k.rate_limit.burst}" if k.rate_limit else "default",
            k.label,
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        ),
    )


def _as_json(key: ApiKey) -> dict[str, object]:
    limit = key.rate_limit
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "acl_groups": list(key.acl_groups),
        "rate_per_second": limit.per_second if limit else None,
        "burst": limit.burst if limit else None,
        "label": key.label,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
