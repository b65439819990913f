"""Commands about checkpoints and variants: ``variants``, ``inspect``, ``legacy``."""

from __future__ import annotations

import typer

from converter.cli_app import app, emit_json, handle_errors
from converter.report_variants import variant_rows


@app.command("variants")
@handle_errors
def variants_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """The four variants, with parameters and conv MACs measured on the built model."""
    rows = variant_rows()
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    header = (
        f"{'name':<4} {'backbone':<8} {'depths':<13} {'dims':<18} {'head':>4} {'up':>3} "
        f"{'heatmap':>9} {'params':>10} {'paper':>6} {'GMACs':>6} {'paper':>5} {'P2 MPJPE':>8}"
    )
    typer.echo(header)
    for row in rows:
        typer.echo(row.table_line())
