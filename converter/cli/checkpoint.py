"""Commands about checkpoints and variants: ``variants``, ``inspect``, ``legacy``."""

from __future__ import annotations

from pathlib import Path

import typer

from converter.checkpoints.canonical import load_checkpoint
from converter.checkpoints.inspection import inspect_checkpoint
from converter.checkpoints.writer import FORMATS, default_output_path, write_canonical
from converter.cli.app import app, echo, emit_json, handle_errors, warn
from converter.core.errors import UsageError
from converter.core.variant_report import variant_rows


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
    echo(header)
    for row in rows:
        echo(row.table_line())


@app.command("inspect")
@handle_errors
def inspect_command(
    checkpoint: Path = typer.Argument(
        ..., help="A .tar/.pth file, an unzipped folder, or a canonical file."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """What a checkpoint really is, decided by its tensor shapes (never by its name)."""
    report = inspect_checkpoint(checkpoint)
    for message in report.warnings:
        warn(message)
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            echo(line)


@app.command("legacy")
@handle_errors
def legacy_command(
    checkpoint: Path = typer.Argument(..., help="A released checkpoint in any form."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output file."),
    variant: str | None = typer.Option(
        None, "--variant", help="Fail unless the tensors are this variant."
    ),
    fmt: str = typer.Option("safetensors", "--format", help="safetensors (default) or pth."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Write the canonical checkpoint: renamed head keys, no prefix, metadata recorded."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    ckpt = load_checkpoint(checkpoint, variant)
    out = output if output is not None else default_output_path(checkpoint, fmt)
    report = write_canonical(ckpt, out, fmt, force)
    if as_json:
        emit_json(report.to_dict())
        return
    echo(
        f"wrote {report.output}: ConvNeXtPose-{report.variant}, {report.tensors} tensors "
        f"({report.format}), {report.keys_renamed} head keys renamed from {report.head_naming}, "
        f"prefixes stripped: {', '.join(report.prefixes_stripped) or 'none'}, "
        f"epoch {report.epoch if report.epoch is not None else 'unknown'}"
    )
