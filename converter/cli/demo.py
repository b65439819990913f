"""``cnp-convert demo``: the whole pipeline on a release-shaped file and a synthetic dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..core.variants import get_variant
from .app import app, echo, handle_errors
from .choices import VARIANT_METAVAR, Variant

if TYPE_CHECKING:
    pass


@app.command("demo")
@handle_errors
def demo_command(
    workdir: Path = typer.Option(Path("cnp-demo"), "--workdir", help="Where the demo writes."),
    variant: Variant = typer.Option(
        "XS",
        "--variant",
        case_sensitive=False,
        metavar=VARIANT_METAVAR,  # one of the variants, never None: not the shared option
        help="XS: the authors' released weights; S, M, L: fabricated random weights.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only N frames."),
    workers: int = typer.Option(2, "--workers", min=0, help="Threads decoding images."),
) -> None:
    """Package weights as a Drive-style ConvNeXtPose_<V>.tar, then run inspect -> legacy -> onnx
    -> verify, eval on a synthetic set, and predict on real photos (XS); print each step."""
    from ..demo import run_demo

    spec = get_variant(str(variant.value))
    report = run_demo(workdir, spec.name, limit=limit, workers=workers, echo=echo)
    seconds = sum(s.seconds for s in report.steps)
    echo(
        f"demo done in {seconds:.1f} s: torch {report.torch_mm:.2f} mm, "
        f"onnxruntime {report.onnx_mm:.2f} mm, delta {report.delta_mm:+.4f} mm, largest joint "
        f"distance {report.max_joint_distance_mm:.4f} mm"
        + (f"; predictions on the photos: {report.predictions}" if report.predictions else "")
    )
