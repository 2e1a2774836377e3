"""The `headwater` command line: every command, grouped by area in the modules of this package.

`headwater --help` imports only typer and these modules; anything heavy (models, Presidio, the runtimes)
is imported inside the command that needs it.
"""

from __future__ import annotations

import typer

from headwater.cli import bench, ops, pipeline
from headwater.cli.connectors import connectors_app
from headwater.cli.keys import keys_app
from headwater.cli.migrate import migrate_app
from headwater.cli.stack import stack_app
from headwater.cli.webhooks import webhooks_app

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Keep a retrieval index in sync with its sources."
)
# The pipeline, embedded: the demo, files in, search, the HTTP server, redaction alone.
app.command()(pipeline.demo)
app.command()(pipeline.ingest)
app.command()(pipeline.search)
app.command()(pipeline.serve)
app.command()(pipeline.redact)
# The distributed runtime: one service per process, and the local stack.
app.command(name="run")(pipeline.run_service)
app.add_typer(stack_app, name="stack")
app.add_typer(connectors_app, name="connectors")
# Operations.
app.command()(ops.replay)
app.command()(ops.lag)
app.add_typer(ops.dlq_app, name="dlq")
app.command()(ops.compact)
app.add_typer(migrate_app, name="migrate")
app.add_typer(keys_app, name="keys")
app.add_typer(webhooks_app, name="webhooks")
# Figures.
app.command(name="eval")(bench.evaluate)
app.add_typer(bench.bench_app, name="bench")


def main() -> None:
    app()
