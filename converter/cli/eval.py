"""Commands about Human3.6M evaluation: ``eval`` and ``demo-data``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from converter.cli.app import (
    OV_PRECISION_HELP,
    RUNTIME_HELP,
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
from converter.cli.choices import (
    BACKENDS,
    DEFAULT_DEVICE,
    VARIANT_METAVAR,
    Device,
    Layout,
    OvPrecision,
    Runtime,
    Variant,
    comma_choices,
    value,
)
from converter.core.errors import (
    CheckFailedError,
    OutputExistsError,
    UsageError,
    VariantMismatchError,
)
from converter.evaluation.evaluate import (
    EvalReport,
    action_table,
    joint_table,
    report_closing,
    report_heading,
)
from converter.runtimes.sessions import check_runtime
from converter.verdicts.tolerances import EVAL_MAX_DELTA_MM, judged_precision

SKIPPED_SHOWN = 5  # skipped images named in the text output; --json lists all


def print_eval_report(report: EvalReport, max_delta_mm: float) -> None:
    """The human output: heading, the per-action and per-joint tables, speed and verdict."""
    for line in [*report_heading(report), ""]:
        echo(line)
    headers, rows = action_table(report)
    print_table(table(headers, rows, numeric=range(1, len(headers))))
    echo("")
    headers, rows = joint_table(report)
    print_table(table(headers, rows, numeric=range(1, len(headers))))
    for line in ["", *report_closing(report, max_delta_mm)]:
        echo(line)


def _resolve_spec(checkpoint, onnx_path: Path | None, metadata, variant: str | None):
    """The variant from the checkpoint and/or the ONNX metadata; they must agree."""
    from converter.core.variants import get_variant

    spec = checkpoint.spec if checkpoint is not None else None
    if metadata is not None:  # only when there is a graph
        if spec is not None and metadata.variant != spec.name:
            raise VariantMismatchError(
                f"{onnx_path}: exported from {metadata.variant}, but the checkpoint is {spec.name}"
            )
        if checkpoint is not None and metadata.weights_sha256 != (
            checkpoint.metadata.weights_sha256
        ):
            warn(f"{onnx_path}: exported from other weights than the checkpoint's")
        spec = spec or get_variant(metadata.variant)
    if variant is not None:
        requested = get_variant(variant)
        if spec is not None and requested.name != spec.name:
            raise VariantMismatchError(f"--variant {requested.name}, but the model is {spec.name}")
        spec = requested
    if spec is None:
        raise UsageError(f"{onnx_path}: no cnp-convert metadata in it; pass --variant")
    return spec


@app.command("eval")
@handle_errors
def eval_command(
    data: Path = typer.Option(..., "--data", help="Human3.6M root (reference or Kaggle layout)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="For the torch backend."),
    onnx: Path | None = typer.Option(None, "--onnx", help="For the onnx backend."),
    variant: Variant | None = typer.Option(
        None,
        "--variant",
        case_sensitive=False,
        metavar=VARIANT_METAVAR,
        help="Check (or give) the variant.",
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Images root holding <sequence>/<file>, if not found from --data."
    ),
    protocol: int = typer.Option(
        2, "--protocol", min=1, max=2, help="1: S11, PA-MPJPE. 2: S9+S11, MPJPE."
    ),
    bbox_root: Path | None = typer.Option(
        None, "--bbox-root", help="RootNet boxes and root depths instead of ground truth."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Evaluate N frames spread evenly over the test set."
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
    device: Device = typer.Option(
        DEFAULT_DEVICE,
        "--device",
        case_sensitive=False,
        help="auto: CUDA where the backend really runs it, else CPU (said in one line).",
    ),
    threads: int | None = typer.Option(None, "--threads", help="The graph runtime's threads."),
    runtime_choice: Runtime = typer.Option(
        "onnxruntime", "--runtime", case_sensitive=False, help=RUNTIME_HELP
    ),
    ov_choice: OvPrecision = typer.Option(
        "auto", "--ov-precision", case_sensitive=False, help=OV_PRECISION_HELP
    ),
    no_flip: bool = typer.Option(False, "--no-flip", help="Turn the flip test off."),
    max_delta_mm: float | None = typer.Option(
        None,
        "--max-delta-mm",
        help="Largest metric difference between backends that passes "
        "(default by the ONNX graph's precision: fp32 0.1, fp16 0.5, int8 10 mm).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="Write each backend's predictions (reference format) here."
    ),
    vis: Path | None = typer.Option(None, "--vis", help="Draw a few predictions into this dir."),
    force: bool = typer.Option(
        False, "--force", help="Replace result files already in --predictions / --vis."
    ),
    skip_missing: bool = typer.Option(
        False,
        "--skip-missing",
        help="Evaluate the frames whose images exist and list the skipped ones "
        "(default: a missing image is an error).",
    ),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Progress on stderr (only on a terminal; never with --json or --quiet).",
    ),
) -> None:
    """Score PyTorch and onnxruntime on Human3.6M with the reference protocol.

    Exit 1 when the two backends' metrics differ by more than --max-delta-mm.
    """
    from converter.checkpoints.canonical import load_checkpoint
    from converter.core.atomic import check_output_dir
    from converter.evaluation.evaluate import (
        evaluate,
        onnx_backend,
        prediction_files,
        torch_backend,
        write_predictions,
    )
    from converter.evaluation.visualize import write_visualisations
    from converter.graphs.facts import graph_precision
    from converter.graphs.metadata import load_onnx_model, read_onnx_metadata
    from converter.h36m.dataset import load_dataset

    names = tuple(backend.split(","))  # checked and normalised by its option callback
    device_name, variant_name = str(device.value), value(variant)
    runtime, ov_precision = str(runtime_choice.value), str(ov_choice.value)
    check_runtime(runtime, ov_precision, device_name)
    if "torch" in names and checkpoint is None:
        raise UsageError("the torch backend needs --checkpoint")
    if "onnx" in names and onnx is None:
        raise UsageError("the onnx backend needs --onnx")
    # Where results go is checked before anything is loaded or run: never inside the dataset,
    # never over earlier results without --force.
    inputs = (data,) if images is None else (data, images)
    if predictions is not None:
        check_output_dir(predictions, inputs, force, prediction_files(names))
    if vis is not None:
        check_output_dir(vis, inputs, force)
    ckpt = load_checkpoint(checkpoint, variant_name) if checkpoint is not None else None
    graph = onnx if "onnx" in names else None
    # Read once: with embedded weights this parses the whole graph file.
    proto = load_onnx_model(graph) if graph is not None else None
    metadata = read_onnx_metadata(proto) if proto is not None else None
    spec = _resolve_spec(ckpt, graph, metadata, variant_name)
    # The precision (and so the default limit) comes from the graph's ops, never its metadata.
    precision = graph_precision(proto) if proto is not None else "fp32"
    if metadata is not None and metadata.precision != precision:
        raise UsageError(
            f"{graph}: the metadata says precision {metadata.precision!r} but the graph's ops "
            f"are {precision}"
        )
    del proto
    origins = {
        "checkpoint": ckpt.metadata.weights if ckpt is not None else None,
        "graph": metadata.weights if metadata is not None else None,
    }
    digest = ckpt.metadata.weights_sha256 if ckpt is not None else None
    if digest is None and metadata is not None:
        digest = metadata.weights_sha256
    if "random" in origins.values():
        warn("random (seeded) weights: the MPJPE itself means nothing, only the backend delta")
    dataset = load_dataset(
        data,
        protocol,
        images=images,
        bbox_root=bbox_root,
        input_hw=spec.input_hw,
        limit=limit,
        skip_missing=skip_missing,
    )
    if dataset.skipped:
        total = len(dataset.skipped) + len(dataset.samples) if limit is None else None
        of = f" of {total}" if total is not None else ""
        first = ", ".join(str(p) for p in dataset.skipped[:SKIPPED_SHOWN])
        warn(
            f"--skip-missing: skipped {len(dataset.skipped)}{of} test frames whose image is "
            f"missing (first {min(SKIPPED_SHOWN, len(dataset.skipped))}: {first})"
            + ("; --json lists them all" if len(dataset.skipped) > SKIPPED_SHOWN else "")
        )
    runners = []
    for name in names:
        if name == "torch":
            runners.append(torch_backend(ckpt, device_name))
        else:
            runner = onnx_backend(onnx, device_name, threads, runtime, ov_precision)  # type: ignore[arg-type]
            if runner.fallback_reason and device_name == "auto":
                # auto asked for nothing: a note, as verify and bench say it, not a warning.
                note(f"auto: onnxruntime runs on CPU ({runner.fallback_reason})")
            elif runner.fallback_reason:
                warn(f"onnxruntime runs on CPU: {runner.fallback_reason}")
            # An fp32 graph that OpenVINO runs in bf16 is held to bf16's limit.
            precision = judged_precision(precision, runner.execution_precision)
            runners.append(runner)
    if max_delta_mm is None:
        max_delta_mm = EVAL_MAX_DELTA_MM[precision]
    if len({r.device for r in runners}) > 1:
        warn(
            "the backends run on different devices: "
            + ", ".join(f"{r.name} on {r.device}" for r in runners)
        )
    with progress_display() as bar:
        report = evaluate(
            dataset,
            runners,
            spec,
            flip=not no_flip,
            batch_size=batch,
            workers=workers,
            progress=bar if progress else None,
        )
    written = write_predictions(report, dataset, spec, predictions, force) if predictions else []
    pictures = write_visualisations(report, dataset, spec, vis, overwrite=force) if vis else []
    agree = None if report.comparison is None else report.comparison.agrees(max_delta_mm)
    if as_json:
        emit_json(
            {
                **report.to_dict(),
                "onnx": str(graph) if graph is not None else None,
                "checkpoint": str(checkpoint) if checkpoint is not None else None,
                "weights_sha256": digest,
                "weights": origins,
                "onnx_precision": precision,
                "max_delta_mm": max_delta_mm,
                "agree": agree,
                "predictions": [str(p) for p in written],
                "vis": [str(p) for p in pictures],
                "skipped_missing": [str(p) for p in dataset.skipped],
            }
        )
    else:
        print_eval_report(report, max_delta_mm)
        if precision != "fp32" and report.comparison is not None and "torch" in names:
            change = (
                report.backend("onnx").summary.total_mm - report.backend("torch").summary.total_mm
            )
            echo(
                f"the {precision} graph's {report.metric} change against fp32 PyTorch: "
                f"{change:+.4f} mm"
            )
        for path in written:
            echo(f"predictions: {path}")
        if pictures:
            echo(f"pictures: {len(pictures)} in {vis}")
    if agree is False:
        c = report.comparison
        raise CheckFailedError(
            f"{c.backends[0]} and {c.backends[1]} {c.metric} differ by "  # type: ignore[union-attr]
            f"{abs(c.difference_mm):.4f} mm > --max-delta-mm {max_delta_mm}"  # type: ignore[union-attr]
        )


@app.command("demo-data")
@handle_errors
def demo_data_command(
    directory: Path = typer.Argument(..., help="Where to write the synthetic set."),
    layout: Layout = typer.Option(
        "reference", "--layout", case_sensitive=False, help="Where images and annotations go."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write a small, deterministic synthetic Human3.6M set.

    Reference annotation format, JPEGs and a RootNet-style file, in the reference or Kaggle layout.
    """
    from converter.h36m.synthetic import make_synthetic_h36m

    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise OutputExistsError(f"{directory}: is not empty; pass --force to write into it")
    result = make_synthetic_h36m(directory, str(layout.value), overwrite=force)
    if as_json:
        emit_json(result.to_dict())
        return
    echo(
        f"wrote a synthetic Human3.6M set ({result.layout} layout) to {result.root}: "
        f"{result.images} test images, {result.annotations} annotated frames, RootNet-style "
        f"file {result.bbox_root}"
    )
