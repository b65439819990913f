"""The ``bench`` command: onnxruntime against PyTorch eager, interleaved, on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from converter.checkpoints.canonical import CanonicalCheckpoint, random_checkpoint
from converter.cli.app import app, echo, emit_json, handle_errors, warn
from converter.cli.export import checkpoint_or_random, parse_batch_list
from converter.core.errors import UsageError
from converter.core.variants import get_variant
from converter.export.exporter import export_onnx
from converter.graphs.metadata import read_onnx_metadata
from converter.verdicts.bench import DEFAULT_RUNS, benchmark, check_bench_options
from converter.verdicts.tolerances import PRECISIONS, check_precision


def _reference_weights(
    model: Path, checkpoint: Path | None, variant: str | None
) -> CanonicalCheckpoint:
    """PyTorch's side of a given graph: the checkpoint, or the seeded weights it records."""
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
    variant: str | None = typer.Option(
        None, "--variant", help="XS, S, M or L; alone, seeded random weights."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (both backends)."),
    batch: str = typer.Option("1,8", "--batch", help="Batch sizes, e.g. 1,8."),
    threads: int | None = typer.Option(
        None, "--threads", help="Intra-op threads for both backends (default: their own)."
    ),
    runs: int = typer.Option(DEFAULT_RUNS, "--runs", help="Timed runs per backend and batch."),
    precision: str = typer.Option(
        "fp32", "--precision", help=f"Without MODEL: export as {', '.join(PRECISIONS)}."
    ),
    spinning: bool = typer.Option(
        False,
        "--spinning/--no-spinning",
        help="Let onnxruntime's idle threads spin (off: they would steal PyTorch's cores).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Time onnxruntime against PyTorch eager on the same inputs, interleaved."""
    batches = parse_batch_list(batch)
    if not batches:
        raise UsageError(f"--batch takes sizes like 1,8, not {batch!r}")
    precision = check_precision(precision)
    check_bench_options(device, batches, threads, runs)  # before reading or exporting anything
    options = {"device": device, "batches": batches, "threads": threads, "runs": runs}
    if model is not None:
        if precision != "fp32":
            raise UsageError("--precision applies to the graph bench exports; MODEL is given")
        ckpt = _reference_weights(model, checkpoint, variant)
        report = benchmark(model, ckpt, spinning=spinning, **options)  # type: ignore[arg-type]
    else:
        ckpt = checkpoint_or_random(checkpoint, variant)
        with tempfile.TemporaryDirectory(prefix="cnp-bench-") as tmp:
            out = Path(tmp) / f"ConvNeXtPose_{ckpt.spec.name}_{precision}.onnx"
            exported = export_onnx(ckpt, out, precision=precision)
            report = benchmark(
                out,
                ckpt,
                spinning=spinning,
                export_seconds=exported.seconds,
                **options,  # type: ignore[arg-type]
            )
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            echo(line)
