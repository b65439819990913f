"""The whole pipeline on a release-shaped file: inspect -> legacy -> onnx -> verify, eval on a
synthetic Human3.6M set, then predict on real photos. Every step calls the same library function
the CLI does.

XS runs on the authors' released weights (converter.checkpoints.released) packaged like the
Drive file: its last step is ``predict`` on the shipped real photos, pictures and JSON, with the
largest 2D distance between the graph's joints and PyTorch's on the same crops. The synthetic
set's people are drawn figures a network trained on Human3.6M photos was never shown, so its
MPJPE there is no accuracy figure; what the eval step shows is that PyTorch and onnxruntime
agree. Other variants run on fabricated random weights, where only that agreement means
anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoints.canonical import build_loaded_model, load_checkpoint
from .checkpoints.fabricate import fabricate_release
from .checkpoints.inspection import inspect_checkpoint
from .checkpoints.released import RELEASED_VARIANT, released_release
from .checkpoints.writer import write_canonical
from .core.errors import CheckFailedError
from .evaluation.evaluate import format_report
from .evaluation.run import EvalOptions, plan_evaluation, run_evaluation
from .export.exporter import export_onnx
from .export.options import ExportOptions
from .h36m.image_files import read_bgr
from .h36m.photos import photo_paths
from .h36m.preprocess import crop_patch, normalize_patch
from .h36m.synthetic import make_synthetic_h36m
from .prediction.run import PredictOptions, PredictReport, run_prediction
from .verdicts.verify import VerifyOptions, verify_onnx

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
    weights: str  # "released (the authors')" or "fabricated (random)"
    predictions: str | None = None  # predict on the real photos: its JSON (released XS only)


def predict_photos(onnx_path: Path, ckpt, out: Path) -> tuple[PredictReport, float]:
    """``predict`` on the shipped photos into out, and the largest 2D distance (pixels) between
    the graph's joints and PyTorch fp32's on the same crops."""
    spec = ckpt.spec
    options = PredictOptions(
        model=onnx_path, images=tuple(photo_paths()), output=out, force=True, device="cpu"
    )
    report = run_prediction(options)
    images = []
    for image in report.images:
        picture = read_bgr(image.path)
        for person in image.people:
            images.append(
                normalize_patch(crop_patch(picture, person.crop_box, spec.input_hw), spec)
            )
    with torch.no_grad():
        reference = build_loaded_model(ckpt)(torch.from_numpy(np.stack(images))).numpy()
    graph = np.stack([person.coords for image in report.images for person in image.people])
    px_per_unit = spec.input_hw[1] / spec.heatmap_hw[1]
    distance = np.linalg.norm(graph[..., :2] - reference[..., :2], axis=-1) * px_per_unit
    return report, float(distance.max())


def run_demo(
    workdir: str | Path,
    variant: str = RELEASED_VARIANT,
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
    trained = variant.strip().upper() == RELEASED_VARIANT
    if trained:
        release = released_release(workdir / "release")
        weights = "released (the authors')"
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
    exported = export_onnx(ckpt, onnx_path, ExportOptions(force=True))
    step("onnx", started, f"{onnx_path}", exported.lines())

    started = time.perf_counter()
    verified = verify_onnx(onnx_path, ckpt, VerifyOptions(device="cpu"))
    step("verify", started, "PASS" if verified.passed else "FAIL", verified.lines())

    started = time.perf_counter()
    data_root = workdir / "h36m"
    synthetic = make_synthetic_h36m(data_root, "reference", overwrite=True)
    step("demo-data", started, f"{synthetic.images} test images in {data_root}")

    started = time.perf_counter()
    # The drawn figures colour their left and right limbs differently, so a mirrored picture is
    # another figure, not the same one seen in a mirror: the flip test does not apply.
    evaluation = EvalOptions(
        data=data_root, checkpoint=canonical_path, onnx=onnx_path, limit=limit, device="cpu",
        workers=workers, flip=False, max_delta_mm=MAX_DELTA_MM,
    )  # fmt: skip
    report = run_evaluation(plan_evaluation(evaluation)).report
    table = format_report(report, MAX_DELTA_MM).split("\n")
    why = "drawn figures" if trained else "random weights"
    summary = f"{report.frames} frames ({why}: only the backend delta means anything)"
    step("eval", started, summary, table)

    comparison = report.comparison
    assert comparison is not None  # two backends always give a comparison
    if not comparison.agrees(MAX_DELTA_MM):
        raise CheckFailedError(
            f"torch and onnxruntime MPJPE differ by {abs(comparison.difference_mm):.4f} mm "
            f"> {MAX_DELTA_MM} mm"
        )

    predictions = None
    if trained:
        started = time.perf_counter()
        found, distance = predict_photos(onnx_path, ckpt, workdir / "predict")
        predictions = found.predictions_file
        step(
            "predict",
            started,
            f"{found.people} people on {len(found.images)} real photos -> {predictions.parent}",
            [
                f"{sum(len(i.pictures) for i in found.images)} pictures (NAME_2d.png, NAME_3d.png) "
                f"and {predictions.name}",
                f"PyTorch and onnxruntime on these crops: largest 2D joint distance "
                f"{distance:.4f} px",
            ],
        )

    return DemoReport(
        workdir=str(workdir),
        variant=variant,
        steps=tuple(steps),
        torch_mm=report.backend("torch").summary.total_mm,
        onnx_mm=report.backend("onnx").summary.total_mm,
        delta_mm=comparison.difference_mm,
        max_joint_distance_mm=comparison.max_distance_mm,
        weights=weights,
        predictions=str(predictions) if predictions is not None else None,
    )
