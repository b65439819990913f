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
    print_table,
    progress_display,
    table,
    warn,
)
from converter.cli.choices import (
    DEFAULT_DEVICE,
    VARIANT_METAVAR,
    Device,
    Exporter,
    OvPrecision,
    Precision,
    Runtime,
    Variant,
    value,
)
from converter.core.atomic import check_output_path
from converter.core.errors import UsageError
from converter.core.progress import ProgressCallback
from converter.core.variants import get_variant
from converter.export.exporter import (
    DEFAULT_OPSET,
    ExportReport,
    export_onnx,
    parse_batch,
    resolve_exporter,
)
from converter.export.precision import DEFAULT_CALIBRATION_COUNT, calibration_set
from converter.export.rewrite import REWRITES
from converter.graphs.metadata import read_onnx_metadata
from converter.runtimes.sessions import check_runtime
from converter.verdicts.judge import POSE_FRAMES, resolve_seed
from converter.verdicts.tolerances import FLOOR_FACTOR, check_atol
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
DEVICE_HELP = (
    "auto: CUDA where both PyTorch and the graph's runtime really run it, else CPU (said in "
    "one line)."
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


FP32_HEADERS = (
    "batch", "output", "max abs error", "PyTorch fp32 floor", "limit", "mean error",
    "worst element (graph vs float64)", "worst joint (floor)", "verdict",
)  # fmt: skip
POSE_HEADERS = (
    "batch", "pose change on", "mean mm", "p95 mm", "worst mm", "worst joint",
    "budget mean / p95 / worst mm", "verdict",
)  # fmt: skip


NUMERIC_COLUMNS = {FP32_HEADERS: range(2, 6), POSE_HEADERS: range(2, 5)}


def verify_tables(report: VerifyReport) -> list[tuple[tuple[str, ...], list[list[str]]]]:
    """(headers, rows) of the fp32 parity results and of the pose-change results, where run."""
    fp32 = []
    for result in report.results:
        for o in result.outputs:
            worst = o.worst_joint
            fp32.append(
                [
                    str(result.batch), o.name, f"{o.error:.3g}", f"{o.floor:.3g}",
                    f"{o.limit:.3g} = {o.rule}", f"{o.mean_error:.3g}",
                    f"{list(o.worst_index)}: {o.candidate_at_worst:.6g} vs "
                    f"{o.reference_at_worst:.6g}",
                    "-" if worst is None else f"{worst[0]} {worst[1]:.3g} mm ({worst[2]:.3g})",
                    ("within limit" if o.passed else "OVER LIMIT")
                    + (f" ({o.note})" if o.note else ""),
                ]
            )  # fmt: skip
    pose = [
        [
            str(p.batch), f"{p.frames} crops ({p.source})", f"{p.mean_mm:.2f}", f"{p.p95_mm:.2f}",
            f"{p.worst_mm:.2f}", p.worst_joint,
            f"{p.budget.mean_mm:g} / {p.budget.p95_mm:g} / {p.budget.worst_mm:g}",
            "within budget" if p.passed else "OVER BUDGET",
        ]
        for p in report.pose
    ]  # fmt: skip
    return [
        (headers, rows) for headers, rows in ((FP32_HEADERS, fp32), (POSE_HEADERS, pose)) if rows
    ]


def _print_verify(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_dict())
        return
    for line in report.heading():
        echo(line)
    for headers, rows in verify_tables(report):
        print_table(table(headers, rows, numeric=NUMERIC_COLUMNS[headers]))
    echo(f"{'PASS' if report.passed else 'FAIL'} in {report.seconds:.1f} s")


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
    variant: Variant | None = typer.Option(
        None,
        "--variant",
        case_sensitive=False,
        metavar=VARIANT_METAVAR,
        help="Checked against the checkpoint; alone, seeded random weights.",
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Output .onnx (default ConvNeXtPose_<V>.onnx here)."
    ),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", help="ONNX opset."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    heatmaps: bool = typer.Option(False, "--heatmaps", help="Also output the raw heatmaps."),
    simplify: bool = typer.Option(
        False,
        "--simplify/--no-simplify",
        help="Also run onnxsim (here it only turns shape Constant nodes into initializers).",
    ),
    exporter: Exporter | None = typer.Option(
        None,
        "--exporter",
        case_sensitive=False,
        help="Default: torchscript (opsets 11-20) while torch ships it, else dynamo (18+).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    precision: Precision = typer.Option(
        "fp32",
        "--precision",
        case_sensitive=False,
        help="fp16/int8 keep the soft-argmax and the I/O in fp32.",
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="int8: calibrate on a Human3.6M root or an images directory (default: the shipped "
        "real photos, augmented).",
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
        "upsampling; every variant: the soft-argmax by moments, one pass).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Export a checkpoint to ONNX, then prove it matches PyTorch on onnxruntime CPU."""
    parsed_batch = parse_batch(batch)  # bad options fail before any loading
    atol = check_atol(atol) if atol is not None else None
    resolve_seed(seed)  # a bad seed fails before any weights are loaded
    exporter_name = resolve_exporter(value(exporter), opset)
    if output is not None:
        check_output_path(output, (), force)
    precision_name = str(precision.value)
    if precision_name != "int8" and (calibration is not None or calibration_count is not None):
        raise UsageError("--calibration and --calibration-count are for --precision int8 only")
    ckpt = checkpoint_or_random(checkpoint, value(variant))
    suffix = "_random" if ckpt.metadata.weights == "random" else ""
    suffix += f"_{precision_name}" if precision_name != "fp32" else ""
    out = output if output is not None else Path(f"ConvNeXtPose_{ckpt.spec.name}{suffix}.onnx")
    with progress_display() as progress:
        report = _export(
            ckpt, out, as_json, progress,
            opset=opset, batch=parsed_batch, heatmaps=heatmaps, simplify=simplify,
            exporter=exporter_name, force=force, precision=precision_name,
            calibration=calibration, calibration_count=calibration_count,
            ort_format=ort_format, atol=atol, seed=seed, no_rewrite=no_rewrite,
        )  # fmt: skip
    if report.simplify_error:
        warn(f"{out}: kept the unsimplified graph: {report.simplify_error}")
    _print(report, as_json)


def _export(
    ckpt: CanonicalCheckpoint,
    out: Path,
    as_json: bool,
    progress: ProgressCallback | None,
    *,
    opset: int,
    batch: str | int,
    heatmaps: bool,
    simplify: bool,
    exporter: str,
    force: bool,
    precision: str,
    calibration: Path | None,
    calibration_count: int | None,
    ort_format: bool,
    atol: float | None,
    seed: int | None,
    no_rewrite: bool,
) -> ExportReport:
    """The export itself, reporting its stages to the progress display."""
    images = None
    if precision == "int8":
        if progress is not None:
            progress("int8 calibration crops", 0, None)
        count = calibration_count if calibration_count is not None else DEFAULT_CALIBRATION_COUNT
        images = calibration_set(ckpt.spec, calibration, count)
    try:
        return export_onnx(
            ckpt,
            out,
            opset=opset,
            batch=batch,
            heatmaps=heatmaps,
            simplify=simplify,
            exporter=exporter,
            force=force,
            precision=precision,
            calibration=images,
            ort_format=ort_format,
            atol=atol,
            seed=seed,
            rewrites=() if no_rewrite else REWRITES,
            progress=progress,
        )
    except ParityFailedError as exc:
        _print(exc.report, as_json)  # the evidence first, then the error and exit 1
        raise


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
    variant: Variant | None = typer.Option(
        None,
        "--variant",
        case_sensitive=False,
        metavar=VARIANT_METAVAR,
        help="Required for a graph without cnp-convert metadata; alone, seeded random weights.",
    ),
    device: Device = typer.Option(
        DEFAULT_DEVICE, "--device", case_sensitive=False, help=DEVICE_HELP
    ),
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
    runtime_choice: Runtime = typer.Option(
        "onnxruntime", "--runtime", case_sensitive=False, help=RUNTIME_HELP
    ),
    ov_choice: OvPrecision = typer.Option(
        "auto", "--ov-precision", case_sensitive=False, help=OV_PRECISION_HELP
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Run PyTorch and the graph on the same images; exit 1 when they disagree."""
    batches = parse_batch_list(batch)
    atol = check_atol(atol) if atol is not None else None
    resolve_seed(seed)  # a bad seed fails before any weights are loaded
    device_name, variant_name = str(device.value), value(variant)
    runtime, ov_precision = str(runtime_choice.value), str(ov_choice.value)
    check_runtime(runtime, ov_precision, device_name)
    # A bad file or a contradicting --variant fails before any weights are loaded or built.
    check_variant_option(model, read_onnx_metadata(model), variant_name)
    ckpt = checkpoint_or_random(checkpoint, variant_name)
    try:
        report = verify_onnx(
            model,
            ckpt,
            device=device_name,
            batches=batches,
            samples=samples,
            atol=atol,
            variant=variant_name,
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
        _print_verify(failed, as_json)
        raise
    for message in report.warnings:
        warn(message)
    _print_verify(report, as_json)
