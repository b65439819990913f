"""Commands about checkpoints and variants: ``variants``, ``inspect``, ``legacy``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .app import app, echo, emit_json, handle_errors, print_table, table, warn
from .choices import CheckpointFormat, Variant, value
from .options import force_option, json_option, variant_option

if TYPE_CHECKING:
    from ..core.variant_report import VariantRow

VARIANT_HEADERS = (
    "name", "backbone", "depths", "dims", "head", "up", "heatmap",
    "params", "paper params", "conv GMACs", "paper GFLOPs", "paper P2 MPJPE",
)  # fmt: skip


def variant_cells(row: VariantRow) -> tuple[str, ...]:
    mpjpe = "-" if row.paper_mpjpe_p2_mm is None else f"{row.paper_mpjpe_p2_mm:.2f} mm"
    return (
        row.name, row.backbone, str(list(row.depths)), str(list(row.dims)), str(row.head_width),
        f"{sum(row.upsample)}UP", "x".join(str(v) for v in row.heatmap), f"{row.params:,}",
        f"{row.paper_params_m:.2f}M", f"{row.conv_macs / 1e9:.3f}", f"{row.paper_gflops:.2f}",
        mpjpe,
    )  # fmt: skip


@app.command("variants")
@handle_errors
def variants_command(
    as_json: bool = json_option("Print a JSON list instead of a table."),
) -> None:
    """The four variants: parameters and conv MACs counted from their layer shapes, next to the
    paper's figures."""
    from ..core.variant_report import variant_rows

    rows = variant_rows()
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    print_table(table(VARIANT_HEADERS, [variant_cells(row) for row in rows], numeric=range(4, 12)))


@app.command("inspect")
@handle_errors
def inspect_command(
    checkpoint: Path = typer.Argument(
        ..., help="A .tar/.pth file, an unzipped folder, or a canonical file."
    ),
    as_json: bool = json_option(),
) -> None:
    """What a checkpoint really is, decided by its tensor shapes (never by its name)."""
    from ..checkpoints.inspection import inspect_checkpoint

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
    variant: Variant | None = variant_option("Fail unless the tensors are this variant."),
    fmt: CheckpointFormat = typer.Option(
        "safetensors", "--format", case_sensitive=False, help="The canonical file's format."
    ),
    force: bool = force_option(),
    as_json: bool = json_option(),
) -> None:
    """Write the canonical checkpoint: renamed head keys, no prefix, metadata recorded."""
    from ..checkpoints.canonical import load_checkpoint, variant_claimed_by_name
    from ..checkpoints.writer import default_output_path, write_canonical

    ckpt = load_checkpoint(checkpoint, value(variant))
    detected = ckpt.spec.name
    out = (
        output if output is not None else default_output_path(checkpoint, str(fmt.value), detected)
    )
    claimed = variant_claimed_by_name(checkpoint)
    if claimed is not None and claimed != detected:
        warn(f"{checkpoint.name} says {claimed}, its tensors are ConvNeXtPose-{detected}")
    report = write_canonical(ckpt, out, str(fmt.value), force)
    if as_json:
        emit_json(report.to_dict())
        return
    echo(
        f"wrote {report.output}: ConvNeXtPose-{report.variant}, {report.tensors} tensors "
        f"({report.format}), {report.keys_renamed} head keys renamed from {report.head_naming}, "
        f"prefixes stripped: {', '.join(report.prefixes_stripped) or 'none'}, "
        f"epoch {report.epoch if report.epoch is not None else 'unknown'}"
    )
