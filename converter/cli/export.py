"""Commands that make and check ONNX graphs: ``onnx`` and ``verify``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import typer

if TYPE_CHECKING:
    from ..verdicts.verify import (
        VerifyReport,
    )
from ..core.atomic import check_output_path
from ..core.choices import (
    DEFAULT_CALIBRATION_COUNT,
    DEFAULT_OPSET,
    POSE_FRAMES,
    REWRITES,
    VERIFY_SAMPLES,
)
from .app import (
    app,
    echo,
    emit_json,
    handle_errors,
    print_table,
    progress_display,
    table,
    warn,
)
from .choices import Device, Exporter, OvPrecision, Precision, Runtime, Target, Variant, value
from .options import (
    OUTPUT_PANEL,
    VERDICT_PANEL,
    atol_option,
    checkpoint_or_random,
    device_option,
    force_option,
    json_option,
    ov_precision_option,
    parse_batch_list,
    runtime_option,
    seed_option,
    timeout_option,
    variant_option,
)

INT8_PANEL = "int8"


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
            # with the sum bound, limits differ per element: the one nearest its limit is shown
            limit = f"{o.limit:.3g} = {o.rule}"
            if o.max_error is not None:
                limit += (
                    f" (at the worst element: error {o.error:.3g}, sum bound {o.allowance:.3g})"
                )
            fp32.append(
                [
                    str(result.batch), o.name,
                    f"{o.error if o.max_error is None else o.max_error:.3g}", o.floor_text(),
                    limit, f"{o.mean_error:.3g}",
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
    variant: Variant | None = variant_option(
        "Checked against the checkpoint; alone, seeded random weights."
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Output .onnx (default ConvNeXtPose_<V>.onnx here).",
        rich_help_panel=OUTPUT_PANEL,
    ),
    target: Target = typer.Option(
        "onnxruntime",
        "--target",
        case_sensitive=False,
        help="Where the graph will run; picks the opset: 11 for tflite (onnx2tf) and onnx2torch, "
        f"else {DEFAULT_OPSET} (docs/compatibility.md). The verdict runs on onnxruntime; tflite "
        "also writes the .tflite onnx2tf makes, only if it passes the same verdict on LiteRT; "
        "verify --runtime openvino/opencv/tflite judges the others.",
    ),
    opset: int | None = typer.Option(
        None, "--opset", help="ONNX opset (default: the target's).", show_default=False
    ),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size."),
    heatmaps: bool = typer.Option(False, "--heatmaps", help="Also output the raw heatmaps."),
    simplify: bool = typer.Option(
        False, "--simplify/--no-simplify", help="Also run onnxsim (optional dependency)."
    ),
    exporter: Exporter | None = typer.Option(
        None,
        "--exporter",
        case_sensitive=False,
        help="Default: torchscript (opsets 11-20) while torch ships it, else dynamo (18+).",
    ),
    force: bool = force_option(),
    precision: Precision = typer.Option(
        "fp32",
        "--precision",
        case_sensitive=False,
        help="fp16/int8 keep the soft-argmax and the I/O in fp32.",
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="A Human3.6M root or an images folder (default: the shipped photos, augmented).",
        rich_help_panel=INT8_PANEL,
    ),
    calibration_count: int | None = typer.Option(
        None,
        "--calibration-count",
        help=f"Calibration crops (default {DEFAULT_CALIBRATION_COUNT}).",
        rich_help_panel=INT8_PANEL,
    ),
    ort_format: bool = typer.Option(
        False,
        "--ort-format",
        help="Also write the onnxruntime .ort file next to the graph.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    atol: float | None = atol_option(),
    seed: int | None = seed_option(),
    no_rewrite: bool = typer.Option(
        False,
        "--no-rewrite",
        help="Keep the literal head (no exact rewrites; docs/flow.md).",
        rich_help_panel=VERDICT_PANEL,
    ),
    as_json: bool = json_option(),
) -> None:
    """Export a checkpoint to ONNX, then prove it matches PyTorch on onnxruntime CPU."""
    from ..export.exporter import default_onnx_name, export_onnx
    from ..export.options import ExportOptions
    from ..verdicts.verify import ParityFailedError

    options = ExportOptions(  # every value checked here, before any weights are loaded
        opset=opset,
        target=str(target.value),
        batch=batch,
        heatmaps=heatmaps,
        simplify=simplify,
        exporter=value(exporter),
        precision=str(precision.value),
        calibration=calibration,
        calibration_count=calibration_count,
        ort_format=ort_format,
        atol=atol,
        seed=seed,
        rewrites=() if no_rewrite else REWRITES,
        force=force,
    )
    if output is not None:
        check_output_path(output, (), force)
    ckpt = checkpoint_or_random(checkpoint, value(variant))
    out = output if output is not None else Path(default_onnx_name(ckpt, options.precision))
    with progress_display() as progress:
        try:
            report = export_onnx(ckpt, out, options, progress=progress)
        except ParityFailedError as exc:
            _print(exc.report, as_json)  # the evidence first, then the error and exit 1
            raise
    if report.simplify_error:
        warn(f"{out}: kept the unsimplified graph: {report.simplify_error}")
    _print(report, as_json)


@app.command("verify")
@handle_errors
def verify_command(
    model: Path = typer.Argument(..., help="The .onnx file to check."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="The checkpoint the graph should match."
    ),
    variant: Variant | None = variant_option(
        "Required for a graph without cnp-convert metadata; alone, seeded random weights."
    ),
    device: Device = device_option(),
    batch: str | None = typer.Option(
        None, "--batch", help="Batch sizes, e.g. 1,4 (default 1,4; a fixed-batch graph: its own)."
    ),
    samples: int = typer.Option(
        VERIFY_SAMPLES,
        "--samples",
        help="fp32: seeded images per batch size (plus 4 crops).",
        rich_help_panel=VERDICT_PANEL,
    ),
    atol: float | None = atol_option(),
    seed: int | None = seed_option(),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="fp16/int8: a Human3.6M root to measure the pose change on (default: synthetic).",
        rich_help_panel=VERDICT_PANEL,
    ),
    frames: int = typer.Option(
        POSE_FRAMES,
        "--frames",
        help="fp16/int8: crops the pose change is measured on.",
        rich_help_panel=VERDICT_PANEL,
    ),
    runtime: Runtime = runtime_option(),
    ov_precision: OvPrecision = ov_precision_option(),
    timeout: float | None = timeout_option(),
    as_json: bool = json_option(),
) -> None:
    """Run PyTorch and the graph on the same images; exit 1 when they disagree."""
    from ..graphs.metadata import read_onnx_metadata
    from ..verdicts.verify import (
        ParityFailedError,
        VerifyOptions,
        check_variant_option,
        verify_onnx,
    )

    options = VerifyOptions(  # every value checked here, before any file is read
        device=str(device.value),
        batch=parse_batch_list(batch),
        samples=samples,
        atol=atol,
        variant=value(variant),
        seed=seed,
        data=data,
        frames=frames,
        runtime=str(runtime.value),
        ov_precision=str(ov_precision.value),
        timeout=timeout,
    )
    # A bad file or a contradicting --variant fails before any weights are loaded or built.
    check_variant_option(model, read_onnx_metadata(model), options.variant)
    ckpt = checkpoint_or_random(checkpoint, options.variant)
    try:
        report = verify_onnx(model, ckpt, options)
    except ParityFailedError as exc:
        failed: VerifyReport = exc.report  # type: ignore[assignment]
        for message in failed.warnings:
            warn(message)
        _print_verify(failed, as_json)
        raise
    for message in report.warnings:
        warn(message)
    _print_verify(report, as_json)
