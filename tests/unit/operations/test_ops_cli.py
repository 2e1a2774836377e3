"""The operator commands refuse contradictory options before they contact a broker."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from headwater.cli.ops import dlq_app, lag, replay

app = typer.Typer()
app.command(name="replay")(replay)
app.command(name="lag")(lag)
app.add_typer(dlq_app, name="dlq")
runner = CliRunner()
# Nothing listens here: a command that got past validation would fail differently (exit 1, not 2).
UNREACHABLE = ["--bootstrap-servers", "127.0.0.1:1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--stage", "chunker"], "exactly one"),
        (["replay", "--stage", "chunker", "--from-beginning", "--from-offset", "3"], "exactly one"),
        (["replay", "--stage", "chunker", "--from-time", "2025-01-01T00:00:00"], "time zone"),
        (
            ["replay", "--stage", "chunker", "--from-beginning", "--to-time", "2025-01-01T00:00:00Z"],
            "--to-time",
        ),
        (
            ["replay", "--stage", "chunker", "--from-beginning", "--tenant", "a", "--into-group", "g"],
            "--into-group",
        ),
        (["replay", "--stage", "nope", "--from-beginning"], "nope"),
        (["dlq", "redrive", "--stage", "chunker", "--offset", "12"], "PARTITION:OFFSET"),
        (["dlq", "show", "chunker", "twelve"], "PARTITION:OFFSET"),
    ],
)
def test_contradictory_or_malformed_options_exit_2_with_the_reason(args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, *UNREACHABLE])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
