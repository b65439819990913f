"""Commands that make and check ONNX graphs: ``onnx`` and ``verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import typer

from converter.checkpoints.canonical import CanonicalCheckpoint, load_checkpoint, random_checkpoint
from converter.cli.app import (
    OV_PRECISION_HELP,
    RUNTIME_HELP,
    app,
    echo,
    emit_json,
    handle_errors,
    warn,
)
from converter.core.atomic import check_output_path
from converter.core.errors import UsageError
from converter.core.variants import get_variant
from converter.export.exporter import (
    DEFAULT_OPSET,
    EXPORTERS,
    export_onnx,
    parse_batch,
    resolve_exporter,
)
from converter.export.precision import DEFAULT_CALIBRATION_COUNT, calibration_set
from converter.export.rewrite import REWRITES
from converter.graphs.metadata import read_onnx_metadata
from converter.verdicts.judge import POSE_FRAMES, resolve_seed
from converter.verdicts.runtime import check_device, check_runtime
from converter.verdicts.tolerances import (
    FLOOR_FACTOR,
    PRECISIONS,
    check_atol,
    check_precision,
)
from converter.verdicts.verify import (
    DEFAULT_SAMPLES,
    ParityFailedError,
    VerifyReport,
    check_variant_option,
    verify_onnx,
)

ATOL_HELP = (
    "fp32: replace the floor rule (a graph passes when its max abs error against PyTorch "
    f"float64 is within {FLOOR_FACTOR:g} x PyTorch fp32's own error + a margin) by a fixed "
    "limit on coords, heatmap units. Positive and finite."
)
SEED_HELP = "Seed of the verdict's inputs (default: a fresh one, printed; give it to repeat a run)."


def checkpoint_or_random(checkpoint: Path | None, variant: str | None) -> CanonicalCheckpoint:
    if checkpoint is not None:
        return load_checkpoint(checkpoint, variant)
    if variant is None:
        raise UsageError("give --checkpoint CKPT, or --variant V for seeded random weights")
    spec = get_variant(variant)
    warn(
        f"no --checkpoint: ConvNeXtPose-{spec.name} with seeded RANDOM weights (seed 0); "
        "fine for graph inspection and benchmarks, meaningless for poses"
    )
    return random_checkpoint(spec, seed=0)


class _Report(Protocol):
    def to_dict(self) -> dict[str, object]: ...
    def lines(self) -> list[str]: ...


def _print(report: _Report, as_json: bool) -> None:
    """Human text and JSON come from the same report object."""
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            echo(line)


@app.command("onnx")
@handle_errors
def onnx_command(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="A released checkpoint in any form, or a canonical file."
    ),
    variant: str | None = typer.Option(
        None, "--variant", help="XS, S, M or L: checked against the checkpoint; alone, random."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Output .onnx (default ConvNeXtPose_<V>.onnx here)."
    ),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", help="ONNX opset."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    heatmaps: bool = typer.Option(False, "--heatmaps", help="Also output the raw heatmaps."),
    no_simplify: bool = typer.Option(False, "--no-simplify", help="Skip onnxsim."),
    exporter: str | None = typer.Option(
        None,
        "--exporter",
        help=f"{' or '.join(EXPORTERS)} (default: dynamo for opset 18+, else torchscript).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help=f"{', '.join(PRECISIONS)}: fp16/int8 keep the soft-argmax and the I/O in fp32.",
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="int8: calibrate on a Human3.6M root or an images directory (default: synthetic).",
    ),
    calibration_count: int | None = typer.Option(
        None,
        "--calibration-count",
        help=f"int8: calibration images (default {DEFAULT_CALIBRATION_COUNT}).",
    ),
    ort_format: bool = typer.Option(
        False, "--ort-format", help="Also write the onnxruntime .ort file next to the graph."
    ),
    atol: float | None = typer.Option(None, "--atol", help=ATOL_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    no_rewrite: bool = typer.Option(
        False,
        "--no-rewrite",
        help="Keep the literal head: no exact rewrites (M/L: the final conv before the last "
        "upsampling; every variant: the soft-argmax by marginals).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Export a checkpoint to ONNX, then prove it matches PyTorch on onnxruntime CPU."""
    parsed_batch = parse_batch(batch)  # bad options fail before any loading
    atol = check_atol(atol) if atol is not None else None
    resolve_seed(seed)  # a bad seed fails before any weights are loaded
    exporter, note = resolve_exporter(exporter, opset)
    if note:
        warn(note)
    if output is not None:
        check_output_path(output, (), force)
    precision = check_precision(precision)
    if precision != "int8" and (calibration is not None or calibration_count is not None):
        raise UsageError("--calibration and --calibration-count are for --precision int8 only")
    ckpt = checkpoint_or_random(checkpoint, variant)
    suffix = "_random" if ckpt.metadata.weights == "random" else ""
    suffix += f"_{precision}" if precision != "fp32" else ""
    out = output if output is not None else Path(f"ConvNeXtPose_{ckpt.spec.name}{suffix}.onnx")
    images = None
    if precision == "int8":
        count = calibration_count if calibration_count is not None else DEFAULT_CALIBRATION_COUNT
        images = calibration_set(ckpt.spec, calibration, count)
    try:
        report = export_onnx(
            ckpt,
            out,
            opset=opset,
            batch=parsed_batch,
            heatmaps=heatmaps,
            simplify=not no_simplify,
            exporter=exporter,
            force=force,
            precision=precision,
            calibration=images,
            ort_format=ort_format,
            atol=atol,
            seed=seed,
            rewrites=() if no_rewrite else REWRITES,
        )
    except ParityFailedError as exc:
        _print(exc.report, as_json)  # the evidence first, then the error and exit 1
        raise
    if report.simplify_error:
        warn(f"{out}: kept the unsimplified graph: {report.simplify_error}")
    _print(report, as_json)


def parse_batch_list(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--batch takes sizes like 1,4, not {text!r}") from None


@app.command("verify")
@handle_errors
def verify_command(
    model: Path = typer.Argument(..., help="The .onnx file to check."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="The checkpoint the graph should match."
    ),
    variant: str | None = typer.Option(
        None,
        "--variant",
        help="Required for a graph without cnp-convert metadata; alone, seeded random weights.",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch: str | None = typer.Option(
        None, "--batch", help="Batch sizes, e.g. 1,4 (default 1,4; a fixed-batch graph: its own)."
    ),
    samples: int = typer.Option(
        DEFAULT_SAMPLES, "--samples", help="fp32: seeded images per batch size (plus 4 crops)."
    ),
    atol: float | None = typer.Option(None, "--atol", help=ATOL_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="fp16/int8: a Human3.6M root to measure the pose change on (default: synthetic).",
    ),
    frames: int = typer.Option(
        POSE_FRAMES, "--frames", help="fp16/int8: crops the pose change is measured on."
    ),
    runtime: str = typer.Option("onnxruntime", "--runtime", help=RUNTIME_HELP),
    ov_precision: str = typer.Option("auto", "--ov-precision", help=OV_PRECISION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Run PyTorch and the graph on the same images; exit 1 when they disagree."""
    batches = parse_batch_list(batch)
    atol = check_atol(atol) if atol is not None else None
    resolve_seed(seed)  # a bad seed fails before any weights are loaded
    check_device(device)
    check_runtime(runtime, ov_precision, device)
    # A bad file or a contradicting --variant fails before any weights are loaded or built.
    check_variant_option(model, read_onnx_metadata(model), variant)
    ckpt = checkpoint_or_random(checkpoint, variant)
    try:
        report = verify_onnx(
            model,
            ckpt,
            device=device,
            batches=batches,
            samples=samples,
            atol=atol,
            variant=variant,
            seed=seed,
            data=data,
            frames=frames,
            runtime=runtime,
            ov_precision=ov_precision,
        )
    except ParityFailedError as exc:
        failed: VerifyReport = exc.report  # type: ignore[assignment]
        for message in failed.warnings:
            warn(message)
        _print(failed, as_json)
        raise
    for message in report.warnings:
        warn(message)
    _print(report, as_json)
