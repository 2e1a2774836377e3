"""`headwater webhooks create|rotate|retire|list`: webhook sources and their signing secrets, in the
runtime's Postgres (where `POST /v1/webhooks/{source}` reads them, embedded or distributed)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from headwater.cli.common import HomeOpt, console, found, print_records, show_secret_once

if TYPE_CHECKING:
    from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore
    from services.ingest.webhooks import WebhookSource

webhooks_app = typer.Typer(
    no_args_is_help=True, help="Webhook sources (each bound to a tenant) and their signing secrets."
)
SecretStdinOpt = Annotated[
    bool,
    typer.Option(
        "--secret-stdin",
        help="read the secret (whsec_…) from stdin, e.g. one the sender generated; default: generate one",
    ),
]
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@contextmanager
def _store(home: Path) -> Iterator[PostgresWebhookStore]:
    """The webhook store of the runtime at `home`: HEADWATER_DATABASE_URL, else its embedded Postgres."""
    from headwater.cli.common import state_store
    from services.ingest.adapters.webhooks_postgres import PostgresWebhookStore

    with state_store(home, PostgresWebhookStore) as store:
        yield store


def _secret(from_stdin: bool) -> tuple[bytes, bool]:
    """(key, generated): the key read from stdin, or a new one."""
    from services.ingest.errors import WebhookSourceError
    from services.ingest.webhooks import new_secret, parse_secret

    if not from_stdin:
        return new_secret(), True
    try:
        return parse_secret(sys.stdin.readline()), False
    except WebhookSourceError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `7d` (a bare number is seconds)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@webhooks_app.command()
def create(
    source: Annotated[str, typer.Argument(help="the name in the URL: POST /v1/webhooks/<source>")],
    tenant: Annotated[str, typer.Option("--tenant", help="the only tenant the source can write into")],
    secret_stdin: SecretStdinOpt = False,
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Register a source; a generated secret is printed once (give it to the sender)."""
    from services.ingest.errors import WebhookSourceError
    from services.ingest.webhooks import format_secret, register_source

    key, generated = _secret(secret_stdin)
    try:
        record = register_source(name=source, tenant=tenant, key=key, now=datetime.now(UTC))
        with _store(home) as store:
            store.create_source(record)
    except WebhookSourceError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"webhook source {source} → tenant {tenant}; secret {record.secrets[0].secret_id}")
    if generated:
        show_secret_once(format_secret(key), what="secret", hint="The sender signs with it.")


@webhooks_app.command()
def rotate(
    source: Annotated[str, typer.Argument(help="the source whose secret to replace")],
    keep_old_for: Annotated[
        str, typer.Option("--keep-old-for", help="how long the current secrets stay valid (0: stop now)")
    ] = "24h",
    secret_stdin: SecretStdinOpt = False,
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Add a new secret; the current ones keep working for `--keep-old-for`, then stop."""
    from services.ingest.errors import WebhookSourceError
    from services.ingest.webhooks import WebhookSecret, format_secret

    overlap = parse_duration(keep_old_for)
    key, generated = _secret(secret_stdin)
    now = datetime.now(UTC)
    secret = WebhookSecret(key=key, created_at=now)
    try:
        with _store(home) as store:
            record = store.add_secret(source, secret, others_expire_at=now + overlap)
    except WebhookSourceError as exc:
        raise typer.BadParameter(str(exc)) from None
    record = found(record, f"no webhook source {source}")
    until = (now + overlap).isoformat(timespec="seconds")
    console.print(f"source {source}: new secret {secret.secret_id}; the previous ones stop at {until}")
    if generated:
        hint = "Sign with both until the sender has switched."
        show_secret_once(format_secret(key), what="secret", hint=hint)


@webhooks_app.command()
def retire(
    source: Annotated[str, typer.Argument(help="the source to shut off")],
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Refuse every further delivery of a source (401); its accepted documents stay indexed."""
    with _store(home) as store:
        record = found(store.retire_source(source, at=datetime.now(UTC)), f"no webhook source {source}")
    assert record.retired_at is not None
    console.print(f"webhook source {source} retired at {record.retired_at.isoformat(timespec='seconds')}")


@webhooks_app.command(name="list")
def list_sources(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per source")] = False,
    home: HomeOpt = Path(".headwater"),
) -> None:
    """Every source with its tenant and secret fingerprints (never a secret)."""
    with _store(home) as store:
        sources = store.list_sources()
    now = datetime.now(UTC)

    def secrets(source: WebhookSource) -> str:
        active = [s for s in source.secrets if s.active(now)]
        return "\n".join(f"{s.secret_id}: {_until(s.expires_at)}" for s in active)

    print_records(
        sources,
        as_json=as_json,
        to_json=lambda source: _as_json(source, now),
        columns=("source", "tenant", "secrets (fingerprint: until)", "created", "retired"),
        row=lambda source: (
            source.name,
            source.tenant,
            secrets(source),
            source.created_at.isoformat(timespec="seconds"),
            source.retired_at.isoformat(timespec="seconds") if source.retired_at else "",
        ),
    )


def _as_json(source: WebhookSource, now: datetime) -> dict[str, object]:
    return {
        "source": source.name,
        "tenant": source.tenant,
        "created_at": source.created_at.isoformat(),
        "retired_at": source.retired_at.isoformat() if source.retired_at else None,
        "secrets": [
            {
                "id": s.secret_id,
                "created_at": s.created_at.isoformat(),
                "expires_at": s.expires_at.isoformat() if s.expires_at else None,
                "active": s.active(now),
            }
            for s in source.secrets
        ],
    }


def _until(expires_at: datetime | None) -> str:
    return expires_at.isoformat() if expires_at else "no expiry"
