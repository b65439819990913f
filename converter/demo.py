"""The whole pipeline on a release-shaped file: inspect -> legacy -> onnx -> verify, the graph on
real photos, then eval on a synthetic Human3.6M set. Every step calls the same library function
the CLI does.

XS runs on the authors' released weights (converter.checkpoints.released) packaged like the
Drive file: the verified graph finds the 2D joints on the shipped real photos, drawn into a
picture. The synthetic set's people are drawn figures a network trained on Human3.6M photos was
never shown, so its MPJPE there is no accuracy figure; what the eval step shows is that PyTorch
and onnxruntime agree. Other variants run on fabricated random weights, where only that
agreement means anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from converter.checkpoints.canonical import build_loaded_model, load_checkpoint
from converter.checkpoints.fabricate import fabricate_release
from converter.checkpoints.inspection import inspect_checkpoint
from converter.checkpoints.released import RELEASED_VARIANT, released_release
from converter.checkpoints.writer import write_canonical
from converter.core.errors import CheckFailedError
from converter.evaluation.evaluate import format_report
from converter.evaluation.run import EvalOptions, plan_evaluation, run_evaluation
from converter.evaluation.visualize import write_photo_sheet
from converter.export.exporter import export_onnx
from converter.export.options import ExportOptions
from converter.h36m.photos import augmented_patch, photo_paths
from converter.h36m.preprocess import normalize_patch, read_bgr
from converter.h36m.synthetic import make_synthetic_h36m
from converter.runtimes.sessions import open_onnx_session
from converter.verdicts.verify import VerifyOptions, verify_onnx

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
    photos_picture: str | None = None  # the 2D joints on the real photos (released XS only)


@dataclass(frozen=True)
class PhotoJoints:
    names: tuple[str, ...]
    pictures: tuple[np.ndarray, ...]  # BGR
    onnx_coords: np.ndarray  # (N, J, 3) heatmap units, the graph's
    max_distance_px: float  # largest 2D distance to PyTorch fp32, in crop pixels
    side: int


def photo_joints(onnx_path: Path, ckpt) -> PhotoJoints:
    """The shipped photos, each whole as the box, through the graph and through PyTorch."""
    spec = ckpt.spec
    paths = photo_paths()
    pictures = tuple(read_bgr(p) for p in paths)
    images = np.stack([normalize_patch(augmented_patch(p, spec.input_hw), spec) for p in pictures])
    graph = open_onnx_session(onnx_path, "cpu").run(images)["coords"]
    with torch.no_grad():
        reference = build_loaded_model(ckpt)(torch.from_numpy(images)).numpy()
    px_per_unit = spec.input_hw[1] / spec.heatmap_hw[1]
    distance = np.linalg.norm(graph[..., :2] - reference[..., :2], axis=-1) * px_per_unit
    return PhotoJoints(
        tuple(p.name for p in paths), pictures, graph, float(distance.max()), spec.input_hw[1]
    )


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

    picture = None
    if trained:
        started = time.perf_counter()
        picture = workdir / "photos_2d.png"
        found = photo_joints(onnx_path, ckpt)
        write_photo_sheet(
            picture, found.pictures, found.onnx_coords, ckpt.spec, found.names, overwrite=True
        )
        step(
            "photos",
            started,
            f"2D joints on {len(found.names)} real photos -> {picture}",
            [
                f"PyTorch and onnxruntime on these photos: largest 2D joint distance "
                f"{found.max_distance_px:.4f} px of a {found.side}-px crop",
            ],
        )

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
    result = DemoReport(
        workdir=str(workdir),
        variant=variant,
        steps=tuple(steps),
        torch_mm=report.backend("torch").summary.total_mm,
        onnx_mm=report.backend("onnx").summary.total_mm,
        delta_mm=comparison.difference_mm,
        max_joint_distance_mm=comparison.max_distance_mm,
        weights=weights,
        photos_picture=str(picture) if picture is not None else None,
    )
    if not comparison.agrees(MAX_DELTA_MM):
        raise CheckFailedError(
            f"torch and onnxruntime MPJPE differ by {abs(result.delta_mm):.4f} mm "
            f"> {MAX_DELTA_MM} mm"
        )
    return result
