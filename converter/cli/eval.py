"""Commands about Human3.6M evaluation: ``eval`` and ``demo-data``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..core.choices import EVAL_BACKENDS as BACKENDS
from ..core.errors import CheckFailedError, OutputExistsError, ReplaceRefusedError
from .app import (
    app,
    echo,
    emit_json,
    handle_errors,
    note,
    print_table,
    progress_display,
    table,
    warn,
)
from .choices import (
    Device,
    Layout,
    OvPrecision,
    Runtime,
    Variant,
    comma_choices,
    value,
)
from .options import (
    OUTPUT_PANEL,
    RUNTIME_PANEL,
    device_option,
    force_option,
    json_option,
    ov_precision_option,
    runtime_option,
    timeout_option,
    variant_option,
)

if TYPE_CHECKING:
    from ..evaluation.run import EvalRun

DATA_PANEL = "Data"


def print_eval_run(run: EvalRun) -> None:
    """The human output: heading, the per-action and per-joint tables, speed and verdict."""
    from ..evaluation.evaluate import (
        action_table,
        joint_table,
        report_closing,
        report_heading,
    )

    report = run.report
    for line in [*report_heading(report), ""]:
        echo(line)
    headers, rows = action_table(report)
    print_table(table(headers, rows, numeric=range(1, len(headers))))
    echo("")
    headers, rows = joint_table(report)
    print_table(table(headers, rows, numeric=range(1, len(headers))))
    for line in ["", *report_closing(report, run.plan.max_delta_mm)]:
        echo(line)
    change = run.precision_change_mm
    if change is not None:
        echo(
            f"the {run.plan.precision} graph's {report.metric} change against fp32 PyTorch: "
            f"{change:+.4f} mm"
        )
    for path in run.predictions:
        echo(f"predictions: {path}")
    if run.pictures:
        echo(f"pictures: {len(run.pictures)} in {run.plan.options.vis}")


@app.command("eval")
@handle_errors
def eval_command(
    data: Path = typer.Option(..., "--data", help="Human3.6M root (reference or Kaggle layout)."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="For the torch backend (without it: --variant's seeded weights)."
    ),
    onnx: Path | None = typer.Option(None, "--onnx", help="For the onnx backend."),
    variant: Variant | None = variant_option(
        "Check (or give) the variant; alone, seeded random weights."
    ),
    images: Path | None = typer.Option(
        None,
        "--images",
        help="Images root holding <sequence>/<file>, if not found from --data.",
        rich_help_panel=DATA_PANEL,
    ),
    protocol: int = typer.Option(
        2,
        "--protocol",
        min=1,
        max=2,
        help="1: S11, PA-MPJPE. 2: S9+S11, MPJPE.",
        rich_help_panel=DATA_PANEL,
    ),
    bbox_root: Path | None = typer.Option(
        None,
        "--bbox-root",
        help="RootNet boxes and root depths instead of ground truth.",
        rich_help_panel=DATA_PANEL,
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=1,
        help="N frames spread evenly over the test set.",
        rich_help_panel=DATA_PANEL,
    ),
    skip_missing: bool = typer.Option(
        False,
        "--skip-missing",
        help="Evaluate the frames whose images exist (default: a missing image is an error).",
        rich_help_panel=DATA_PANEL,
    ),
    batch: int = typer.Option(16, "--batch", min=1, help="Images per inference call."),
    workers: int = typer.Option(
        min(4, os.cpu_count() or 1), "--workers", min=0, help="Threads decoding and cropping."
    ),
    backend: str = typer.Option(
        "torch,onnx",
        "--backend",
        help=f"Comma list of {', '.join(BACKENDS)}.",
        **comma_choices(BACKENDS, "--backend"),
    ),
    device: Device = device_option("auto: CUDA where the backend really runs it, else CPU."),
    threads: int | None = typer.Option(
        None, "--threads", help="The graph runtime's threads.", rich_help_panel=RUNTIME_PANEL
    ),
    runtime: Runtime = runtime_option(),
    ov_precision: OvPrecision = ov_precision_option(),
    timeout: float | None = timeout_option(),
    no_flip: bool = typer.Option(False, "--no-flip", help="Turn the flip test off."),
    max_delta_mm: float | None = typer.Option(
        None,
        "--max-delta-mm",
        help="Largest metric difference between backends that passes (default: by the "
        "graph's precision, docs/evaluation.md).",
    ),
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        help="Write each backend's predictions (reference format) here.",
        rich_help_panel=OUTPUT_PANEL,
    ),
    vis: Path | None = typer.Option(
        None, "--vis", help="Draw a few predictions into this dir.", rich_help_panel=OUTPUT_PANEL
    ),
    force: bool = force_option("Replace result files already in --predictions / --vis."),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Progress on stderr (only on a terminal; never with --json or --quiet).",
        rich_help_panel=OUTPUT_PANEL,
    ),
    as_json: bool = json_option("Print JSON instead of the table."),
) -> None:
    """Score PyTorch and onnxruntime on Human3.6M with the reference protocol.

    Exit 1 when the two backends' metrics differ by more than --max-delta-mm.
    """
    from ..evaluation.run import EvalOptions, plan_evaluation, run_evaluation

    options = EvalOptions(  # every value checked here, before anything is read
        data=data, checkpoint=checkpoint, onnx=onnx, variant=value(variant), images=images,
        protocol=protocol, bbox_root=bbox_root, limit=limit, batch=batch, workers=workers,
        backend=tuple(backend.split(",")), device=str(device.value), threads=threads,
        runtime=str(runtime.value), ov_precision=str(ov_precision.value), flip=not no_flip,
        max_delta_mm=max_delta_mm, predictions=predictions, vis=vis, force=force,
        skip_missing=skip_missing, timeout=timeout,
    )  # fmt: skip
    plan = plan_evaluation(options)
    for message in plan.warnings:
        warn(message)
    for message in plan.notes:
        note(message)
    with progress_display() as bar:
        run = run_evaluation(plan, bar if progress else None)
    if as_json:
        emit_json(run.to_dict())
    else:
        print_eval_run(run)
    failure = run.failure()
    if failure is not None:
        raise CheckFailedError(failure)


@app.command("demo-data")
@handle_errors
def demo_data_command(
    directory: Path = typer.Argument(..., help="Where to write the synthetic set."),
    layout: Layout = typer.Option(
        "reference", "--layout", case_sensitive=False, help="Where images and annotations go."
    ),
    force: bool = force_option("Write into a non-empty directory."),
    as_json: bool = json_option("Print JSON."),
) -> None:
    """Write a small, deterministic synthetic Human3.6M set.

    Reference annotation format, JPEGs and a RootNet-style file, in the reference or Kaggle layout.
    """
    from ..h36m.synthetic import make_synthetic_h36m

    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ReplaceRefusedError(f"{directory}: is not empty")
    result = make_synthetic_h36m(directory, str(layout.value), overwrite=force)
    if as_json:
        emit_json(result.to_dict())
        return
    echo(
        f"wrote a synthetic Human3.6M set ({result.layout} layout) to {result.root}: "
        f"{result.images} test images, {result.annotations} annotated frames, RootNet-style "
        f"file {result.bbox_root}"
    )
