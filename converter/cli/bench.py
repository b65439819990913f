"""The ``bench`` command: onnxruntime against PyTorch eager, interleaved, on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ..checkpoints.canonical import CanonicalCheckpoint
    from ..evaluation.bench import (
        BenchReport,
    )
from ..core.choices import BENCH_RUNS, PRECISIONS, RUNTIMES
from ..core.errors import UsageError
from ..core.variants import get_variant
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
from .choices import Device, OvPrecision, Variant, comma_choices, value
from .options import (
    DEVICE_HELP,
    RUNTIME_PANEL,
    checkpoint_or_random,
    device_option,
    json_option,
    ov_precision_option,
    parse_batch_list,
    timeout_option,
    variant_option,
)

BENCH_HEADERS = ("batch", "backend", "median ms", "min ms", "max ms", "frames/s", "vs PyTorch")


def bench_rows(report: BenchReport) -> list[list[str]]:
    """One row per batch size and backend: PyTorch, the graph, then every contender."""
    from ..evaluation.bench import speed_words

    rows = []
    graph = f"{report.runtime} {report.precision}"
    if report.execution_precision:
        graph += f" (runs in {report.execution_precision})"
    for r in report.rows:
        timed = [("PyTorch eager", r.torch, None), (graph, r.onnx, r.speedup)]
        timed += [
            (
                o.label + (f" (runs in {o.execution_precision})" if o.execution_precision else ""),
                o.latency,
                o.speedup,
            )
            for o in r.others
        ]
        for label, latency, speedup in timed:
            rows.append(
                [
                    str(r.batch), label, f"{latency.median_ms:.2f}", f"{latency.min_ms:.2f}",
                    f"{latency.max_ms:.2f}", f"{latency.fps:.1f}",
                    "1 (reference)" if speedup is None else speed_words(speedup),
                ]
            )  # fmt: skip
    return rows


def _reference_weights(
    model: Path, checkpoint: Path | None, variant: str | None
) -> CanonicalCheckpoint:
    """PyTorch's side of a given graph: the checkpoint, or the seeded weights it records."""
    from ..checkpoints.canonical import random_checkpoint
    from ..graphs.metadata import read_onnx_metadata

    meta = read_onnx_metadata(model)
    if checkpoint is not None or meta is None or meta.weights != "random":
        if checkpoint is None and variant is None:
            raise UsageError(
                f"{model}: pass --checkpoint (the weights it came from) for the PyTorch side"
            )
        return checkpoint_or_random(checkpoint, variant)
    # A graph exported from seeded weights: rebuild them, and make sure they are the same.
    spec = get_variant(variant or meta.variant)
    ckpt = random_checkpoint(spec, seed=0)
    if ckpt.metadata.weights_sha256 != meta.weights_sha256:
        warn(f"{model}: seeded weights differ from the graph's; latency is still comparable")
    return ckpt


@app.command("bench")
@handle_errors
def bench_command(
    model: Path | None = typer.Argument(
        None, help="The .onnx file to time (default: export one to a temporary directory)."
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Weights for PyTorch (and the export, without MODEL)."
    ),
    variant: Variant | None = variant_option("Alone, seeded random weights."),
    device: Device = device_option(f"Both backends. {DEVICE_HELP}"),
    batch: str = typer.Option("1,8", "--batch", help="Batch sizes, e.g. 1,8."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="Intra-op threads for both backends (default: their own).",
        rich_help_panel=RUNTIME_PANEL,
    ),
    runs: int = typer.Option(BENCH_RUNS, "--runs", help="Timed runs per backend and batch."),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help=f"Without MODEL: export as {', '.join(PRECISIONS)}; a comma list times each graph "
        "in the same rounds.",
        **comma_choices(PRECISIONS, "--precision"),
    ),
    runtime: str = typer.Option(
        "onnxruntime",
        "--runtime",
        help=f"{' and/or '.join(RUNTIMES)} (comma list: each runs every graph, in the same "
        "rounds).",
        rich_help_panel=RUNTIME_PANEL,
        **comma_choices(RUNTIMES, "--runtime"),
    ),
    ov_precision: OvPrecision = ov_precision_option(),
    spinning: bool = typer.Option(
        False,
        "--spinning/--no-spinning",
        help="Let onnxruntime's idle threads spin (off: they would steal PyTorch's cores).",
        rich_help_panel=RUNTIME_PANEL,
    ),
    timeout: float | None = timeout_option(),
    as_json: bool = json_option("Print JSON instead of the table."),
) -> None:
    """Time the graph's runtime(s) against PyTorch eager on the same inputs, interleaved."""
    from ..evaluation.bench import BenchOptions, bench_graphs
    from ..export.exporter import export_onnx
    from ..export.options import ExportOptions

    batches = parse_batch_list(batch)
    if not batches:
        raise UsageError(f"--batch takes sizes like 1,8, not {batch!r}")
    options = BenchOptions(  # every value checked here, before reading or exporting
        device=str(device.value),
        batch=batches,
        threads=threads,
        runs=runs,
        spinning=spinning,
        runtime=tuple(runtime.split(",")),  # checked and normalised by the option callback
        ov_precision=str(ov_precision.value),
        timeout=timeout,
    )
    precisions, variant_name = precision.split(","), value(variant)
    if model is not None:
        if precisions != ["fp32"]:
            raise UsageError("--precision applies to the graph bench exports; MODEL is given")
        ckpt = _reference_weights(model, checkpoint, variant_name)
        report = bench_graphs({"graph": model}, ckpt, options)
    else:
        ckpt = checkpoint_or_random(checkpoint, variant_name)
        with tempfile.TemporaryDirectory(prefix="cnp-bench-") as tmp:
            graphs, names, seconds = {}, {}, 0.0
            # The display ends before timing starts: its refresh thread would cost CPU time.
            with progress_display() as progress:
                for name in precisions:
                    out = Path(tmp) / f"ConvNeXtPose_{ckpt.spec.name}_{name}.onnx"
                    export = ExportOptions(precision=name)
                    seconds += export_onnx(ckpt, out, export, progress=progress).seconds
                    graphs[name] = out
                    names[name] = f"{out.name} (exported for this run, not kept)"
            report = bench_graphs(graphs, ckpt, options, export_seconds=seconds, labels=names)
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.heading():
            echo(line)
        print_table(table(BENCH_HEADERS, bench_rows(report), numeric=range(2, 7)))
