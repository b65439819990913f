"""The ``bench`` command: onnxruntime against PyTorch eager, interleaved, on this machine."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import typer

from converter.checkpoints.canonical import CanonicalCheckpoint, random_checkpoint
from converter.cli.app import OV_PRECISION_HELP, app, echo, emit_json, handle_errors, warn
from converter.cli.export import checkpoint_or_random, parse_batch_list
from converter.core.errors import UsageError
from converter.core.variants import get_variant
from converter.export.exporter import export_onnx
from converter.graphs.metadata import read_onnx_metadata
from converter.verdicts.bench import (
    DEFAULT_RUNS,
    BenchReport,
    Contender,
    benchmark,
    check_bench_options,
)
from converter.verdicts.runtime import check_runtime
from converter.verdicts.tolerances import PRECISIONS, check_precision


def _choices(text: str, check: Callable[[str], str]) -> list[str]:
    """A comma list of choices, each checked, duplicates dropped, order kept."""
    names = [check(part) for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError(f"expected one or more comma-separated choices, not {text!r}")
    return list(dict.fromkeys(names))


def _bench(
    main: Path,
    ckpt: CanonicalCheckpoint,
    graphs: dict[str, Path],
    runtimes: list[str],
    ov_precision: str,
    spinning: bool,
    options: dict[str, object],
) -> BenchReport:
    """The first graph on the first runtime against PyTorch; every other pair as a contender."""
    contenders = [
        Contender(f"{runtime} {label}", path, runtime, ov_precision)
        for label, path in graphs.items()
        for runtime in runtimes
        if (path, runtime) != (main, runtimes[0])
    ]
    return benchmark(
        main, ckpt, spinning=spinning, runtime=runtimes[0], ov_precision=ov_precision,
        contenders=contenders, **options,  # type: ignore[arg-type]
    )  # fmt: skip


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
        "fp32",
        "--precision",
        help=f"Without MODEL: export as {', '.join(PRECISIONS)}; a comma list times each graph "
        "in the same rounds.",
    ),
    runtime: str = typer.Option(
        "onnxruntime",
        "--runtime",
        help="onnxruntime and/or openvino (comma list: each runs every graph, in the same rounds).",
    ),
    ov_precision: str = typer.Option("auto", "--ov-precision", help=OV_PRECISION_HELP),
    spinning: bool = typer.Option(
        False,
        "--spinning/--no-spinning",
        help="Let onnxruntime's idle threads spin (off: they would steal PyTorch's cores).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
) -> None:
    """Time the graph's runtime(s) against PyTorch eager on the same inputs, interleaved."""
    batches = parse_batch_list(batch)
    if not batches:
        raise UsageError(f"--batch takes sizes like 1,8, not {batch!r}")
    precisions = _choices(precision, check_precision)
    runtimes = _choices(runtime, lambda name: check_runtime(name, ov_precision, device))
    check_bench_options(device, batches, threads, runs)  # before reading or exporting anything
    options = {"device": device, "batches": batches, "threads": threads, "runs": runs}
    if model is not None:
        if precisions != ["fp32"]:
            raise UsageError("--precision applies to the graph bench exports; MODEL is given")
        ckpt = _reference_weights(model, checkpoint, variant)
        report = _bench(model, ckpt, {"graph": model}, runtimes, ov_precision, spinning, options)
    else:
        ckpt = checkpoint_or_random(checkpoint, variant)
        with tempfile.TemporaryDirectory(prefix="cnp-bench-") as tmp:
            graphs, seconds = {}, 0.0
            for name in precisions:
                out = Path(tmp) / f"ConvNeXtPose_{ckpt.spec.name}_{name}.onnx"
                seconds += export_onnx(ckpt, out, precision=name).seconds
                graphs[name] = out
            report = _bench(
                graphs[precisions[0]], ckpt, graphs, runtimes, ov_precision, spinning,
                {**options, "export_seconds": seconds},
            )  # fmt: skip
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            echo(line)
