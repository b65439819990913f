"""The whole pipeline on a release-shaped file: inspect -> legacy -> onnx -> verify -> eval on a
synthetic Human3.6M set. Every step calls the same library function the CLI does.

XS runs on the trained stand-in (converter.checkpoints.standin) packaged like the Drive file, so
its MPJPE means something and is compared with the trivial baseline (always the mean training
pose). Other variants run on fabricated random weights, where only the backend delta means
anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converter.checkpoints.canonical import load_checkpoint
from converter.checkpoints.fabricate import fabricate_release
from converter.checkpoints.inspection import inspect_checkpoint
from converter.checkpoints.standin import (
    STANDIN_VARIANT,
    load_standin,
    mean_training_pose,
    standin_release,
)
from converter.checkpoints.writer import write_canonical
from converter.core.errors import CheckFailedError
from converter.evaluation.baseline import fixed_pose_mpjpe
from converter.evaluation.evaluate import evaluate, format_report, onnx_backend, torch_backend
from converter.export.exporter import export_onnx
from converter.h36m.dataset import load_dataset
from converter.h36m.synthetic import make_synthetic_h36m
from converter.verdicts.verify import verify_onnx

MAX_DELTA_MM = 0.1


@dataclass(frozen=True)
class DemoStep:
    name: str
    seconds: float
    summary: str


@dataclass(frozen=True)
class DemoReport:
    workdir: str
    variant: str
    steps: tuple[DemoStep, ...]
    torch_mm: float
    onnx_mm: float
    delta_mm: float
    max_joint_distance_mm: float
    weights: str  # "trained stand-in" or "fabricated (random)"
    baseline_mm: float | None = None  # the mean training pose's MPJPE (stand-in only)


def run_demo(
    workdir: str | Path,
    variant: str = STANDIN_VARIANT,
    *,
    limit: int | None = None,
    workers: int = 2,
    echo: Callable[[str], None] = print,
) -> DemoReport:
    """Run every step under workdir (created; the demo's own files there are replaced)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    steps: list[DemoStep] = []

    def step(name: str, started: float, summary: str, details: list[str] | None = None) -> None:
        seconds = time.perf_counter() - started
        steps.append(DemoStep(name, seconds, summary))
        echo(f"== {name} ({seconds:.1f} s): {summary}")
        for line in details or []:
            echo(f"   {line}")

    started = time.perf_counter()
    trained = variant.strip().upper() == STANDIN_VARIANT
    if trained:
        release = standin_release(workdir / "release")
        weights = "trained stand-in"
    else:
        release = fabricate_release(variant, workdir / "release")
        weights = "fabricated (random)"
    size = release.stat().st_size / 1e6
    step("release", started, f"{release} ({size:.1f} MB, Drive layout, {weights} weights)")

    started = time.perf_counter()
    inspected = inspect_checkpoint(release)
    step("inspect", started, f"ConvNeXtPose-{inspected.variant}", inspected.lines())

    started = time.perf_counter()
    canonical_path = workdir / f"ConvNeXtPose_{variant}.canonical.safetensors"
    legacy = write_canonical(load_checkpoint(release, variant), canonical_path, force=True)
    step(
        "legacy",
        started,
        f"{legacy.output}: {legacy.tensors} tensors, {legacy.keys_renamed} head keys renamed "
        f"from {legacy.head_naming}",
    )

    started = time.perf_counter()
    ckpt = load_checkpoint(canonical_path, variant)
    onnx_path = workdir / f"convnextpose_{variant.lower()}.onnx"
    exported = export_onnx(ckpt, onnx_path, force=True)
    step("onnx", started, f"{onnx_path}", exported.lines())

    started = time.perf_counter()
    verified = verify_onnx(onnx_path, ckpt, device="cpu")
    step("verify", started, "PASS" if verified.passed else "FAIL", verified.lines())

    started = time.perf_counter()
    data_root = workdir / "h36m"
    synthetic = make_synthetic_h36m(data_root, "reference", overwrite=True)
    step("demo-data", started, f"{synthetic.images} test images in {data_root}")

    started = time.perf_counter()
    dataset = load_dataset(data_root, 2, input_hw=ckpt.spec.input_hw, limit=limit)
    backends = [torch_backend(ckpt, "cpu"), onnx_backend(onnx_path, "cpu")]
    # The drawn figures colour their left and right limbs differently, so a mirrored picture is
    # another figure, not the same one seen in a mirror: the flip test does not apply.
    report = evaluate(dataset, backends, ckpt.spec, workers=workers, progress=False, flip=False)
    table = format_report(report, MAX_DELTA_MM).split("\n")
    baseline = None
    if trained:
        baseline = fixed_pose_mpjpe(dataset, mean_training_pose(load_standin()), ckpt.spec)
        torch_mm = report.backend("torch").summary.total_mm
        summary = (
            f"{report.frames} held-out frames: stand-in MPJPE {torch_mm:.1f} mm, the mean "
            f"training pose {baseline:.1f} mm ({baseline / torch_mm:.1f}x worse)"
        )
    else:
        summary = f"{report.frames} frames (random weights: only the backend delta means anything)"
    step("eval", started, summary, table)

    comparison = report.comparison
    assert comparison is not None  # two backends always give a comparison
    result = DemoReport(
        workdir=str(workdir),
        variant=variant,
        steps=tuple(steps),
        torch_mm=report.backend("torch").summary.total_mm,
        onnx_mm=report.backend("onnx").summary.total_mm,
        delta_mm=comparison.difference_mm,
        max_joint_distance_mm=comparison.max_distance_mm,
        weights=weights,
        baseline_mm=baseline,
    )
    if not comparison.agrees(MAX_DELTA_MM):
        raise CheckFailedError(
            f"torch and onnxruntime MPJPE differ by {abs(result.delta_mm):.4f} mm "
            f"> {MAX_DELTA_MM} mm"
        )
    return result
