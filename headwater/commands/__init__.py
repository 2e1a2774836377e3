"""Typer sub-commands, one module per area; `headwater.cli` assembles them."""
