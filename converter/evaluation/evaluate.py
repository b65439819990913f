"""Run one or more backends over a Human3.6M test set and score them -> a frozen EvalReport.

Each batch of images is decoded and cropped once, in parallel threads (OpenCV releases the GIL),
then fed to every backend, so the backends see byte-identical inputs. The flip test (facts §4.5)
is on by default. Timing is split into decoding (shared) and inference (per backend); a backend's
frames/s is what a run with that backend alone would achieve: frames / (decode + its inference).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..core.atomic import OutputSet, make_output_dir, write_output
from ..core.errors import OnnxModelError, UsageError
from ..core.progress import ProgressCallback, progress_callback
from ..core.variants import VariantSpec
from ..h36m.dataset import H36MDataset, Sample
from ..h36m.metrics import (
    BackendComparison,
    MetricSummary,
    back_project,
    compare_backends,
    eval_joint_indices,
    joint_errors,
    scored_poses,
    summarize,
)
from ..h36m.preprocess import load_input
from ..runtimes.sessions import Session

RESULT_FILE = "bbox_root_pose_human36m_output_{backend}.json"


class Backend(Protocol):
    """Normalized images (N, 3, H, W) float32 -> coords (N, J, 3) in heatmap units."""

    name: str
    device: str  # the device that really runs ("cpu" or "cuda")
    providers: tuple[str, ...]

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    name = "torch"

    def __init__(self, model, device) -> None:
        import torch

        self._torch = torch
        self._model = model.to(device).eval()
        self._device = device
        self.device = device.type
        self.providers = (f"torch {torch.__version__} ({device})",)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        from ..runtimes.sessions import strict_fp32

        torch = self._torch
        with torch.inference_mode(), strict_fp32(self._device):
            coords = self._model(torch.from_numpy(images).to(self._device))
        return coords.float().cpu().numpy()


class OnnxBackend:
    name = "onnx"

    def __init__(self, session: Session) -> None:
        if "coords" not in session.output_names:
            outputs = ", ".join(session.output_names)
            raise OnnxModelError(f"{session.path}: has no 'coords' output (outputs: {outputs})")
        self._session = session
        self.device = session.device
        self.providers = tuple(session.providers)
        self.fallback_reason = session.fallback_reason
        # OpenVINO's read-back execution precision (bf16 on AMX); None: the graph's own types.
        self.execution_precision = session.execution_precision
        batch = (session.input_shape or (None,))[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def _coords(self, images: np.ndarray) -> np.ndarray:
        """One run's coords, checked: (N, J, 3) finite numbers for N images, or a one-line
        OnnxModelError (a graph can hold anything; NaN would become NaN figures)."""
        coords = np.asarray(self._session.run(images)["coords"])
        count = images.shape[0]
        if coords.ndim != 3 or coords.shape[0] != count or coords.shape[2] != 3:
            raise OnnxModelError(
                f"{self._session.path}: 'coords' came out {list(coords.shape)} for {count} "
                "images, expected N x joints x 3"
            )
        bad = int((~np.isfinite(coords)).sum())
        if bad:
            raise OnnxModelError(
                f"{self._session.path}: 'coords' holds {bad:,} NaN or infinite value(s) on "
                "real inputs: not a usable graph"
            )
        return coords

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None:
            return self._coords(images)
        # A model exported with a fixed batch: feed it chunks of that size, the last one padded.
        size, count = self.fixed_batch, images.shape[0]
        parts = []
        for start in range(0, count, size):
            chunk = images[start : start + size]
            if chunk.shape[0] < size:
                pad = np.repeat(chunk[-1:], size - chunk.shape[0], axis=0)
                chunk = np.concatenate([chunk, pad])
            parts.append(self._coords(chunk))
        return np.concatenate(parts)[:count]


def torch_backend(ckpt, device: str = "auto") -> TorchBackend:
    """The checkpoint's model, strictly loaded, on the resolved device."""
    from ..checkpoints.canonical import build_loaded_model
    from ..runtimes.sessions import resolve_torch_device

    return TorchBackend(build_loaded_model(ckpt), resolve_torch_device(device))


def onnx_backend(
    path: str | Path,
    device: str = "auto",
    threads: int | None = None,
    runtime: str = "onnxruntime",
    ov_precision: str = "auto",
    *,
    time_limit_s: float | None = None,
) -> OnnxBackend:
    """The graph on onnxruntime (CPU/CUDA) or OpenVINO (CPU, its execution precision reported);
    time_limit_s: seconds per run (None: the default for its batch)."""
    from ..runtimes.sessions import open_session

    return OnnxBackend(
        open_session(
            path, runtime, device, threads, ov_precision=ov_precision, time_limit_s=time_limit_s
        )
    )


# ---------------------------------------------------------------------------------------------
# Flip test


def unflip_coords(coords: np.ndarray, spec: VariantSpec) -> np.ndarray:
    """Coords predicted on a mirrored patch -> the original frame: x' = W - x - 1, pairs swapped."""
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., 0] = spec.heatmap_hw[1] - out[..., 0] - 1.0
    for a, b in spec.flip_pairs:
        out[..., [a, b], :] = out[..., [b, a], :]
    return out


def predict(backend: Backend, images: np.ndarray, spec: VariantSpec, flip: bool = True):
    """(N, J, 3) float64 heatmap coords; with flip, the mean of the plain and mirrored passes."""
    coords = np.asarray(backend(images), dtype=np.float64)
    if not flip:
        return coords
    mirrored = backend(np.ascontiguousarray(images[..., ::-1]))  # mirror along the width
    return (coords + unflip_coords(mirrored, spec)) / 2.0


# ---------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class BackendResult:
    name: str
    device: str
    providers: tuple[str, ...]
    summary: MetricSummary
    frames: int
    decode_s: float  # shared by all backends of the run
    inference_s: float
    coords: np.ndarray = field(repr=False)  # (N, J, 3) heatmap units, after the flip test
    pred_cam: np.ndarray = field(repr=False)  # (N, J, 3) camera mm, absolute
    scored: np.ndarray = field(repr=False)  # (N, J, 3) root-relative, aligned for Protocol 1

    @property
    def loop_s(self) -> float:
        return self.decode_s + self.inference_s

    @property
    def fps(self) -> float:
        return self.frames / self.loop_s if self.loop_s > 0 else float("nan")

    @property
    def decode_share(self) -> float:
        return self.decode_s / self.loop_s if self.loop_s > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "backend": self.name,
            "device": self.device,
            "providers": list(self.providers),
            **self.summary.to_dict(),
            "fps": self.fps,
            "decode_s": self.decode_s,
            "inference_s": self.inference_s,
            "decode_share": self.decode_share,
        }


@dataclass(frozen=True)
class EvalReport:
    variant: str
    protocol: int
    metric: str
    frames: int
    flip: bool
    layout: str
    bbox_source: str
    batch_size: int
    workers: int
    backends: tuple[BackendResult, ...]
    comparison: BackendComparison | None
    image_ids: tuple[int, ...] = field(repr=False)

    def backend(self, name: str) -> BackendResult:
        for result in self.backends:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "protocol": self.protocol,
            "metric": self.metric,
            "frames": self.frames,
            "flip_test": self.flip,
            "layout": self.layout,
            "bbox_source": self.bbox_source,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "backends": [b.to_dict() for b in self.backends],
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }


def report_heading(report: EvalReport) -> list[str]:
    """What was evaluated, above the tables."""
    flip = "flip test on" if report.flip else "flip test off"
    return [
        f"Human3.6M Protocol {report.protocol} {report.metric} (mm), ConvNeXtPose-"
        f"{report.variant}, {report.frames} frames, {flip}, boxes: {report.bbox_source}",
        f"data: {report.layout}",
    ]


def action_table(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): the metric per action and backend, then the total row."""
    headers = ["action", "frames", *(b.name for b in report.backends)]
    rows = [
        [action, str(count), *(f"{b.summary.per_action[row][2]:.2f}" for b in report.backends)]
        for row, (action, count, _) in enumerate(report.backends[0].summary.per_action)
    ]
    rows.append(
        ["total", str(report.frames), *(f"{b.summary.total_mm:.2f}" for b in report.backends)]
    )
    return headers, rows


def joint_table(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): the metric per joint and backend."""
    headers = ["joint", *(b.name for b in report.backends)]
    rows = [
        [joint, *(f"{b.summary.per_joint[row][1]:.2f}" for b in report.backends)]
        for row, (joint, _) in enumerate(report.backends[0].summary.per_joint)
    ]
    return headers, rows


def report_closing(report: EvalReport, max_delta_mm: float) -> list[str]:
    """Below the tables: each backend's speed, and the backend comparison."""
    lines = [
        f"{b.name:<6} on {b.device}: {b.fps:.1f} frames/s over the whole loop "
        f"(decode {b.decode_s:.2f} s = {100 * b.decode_share:.0f}%, "
        f"inference {b.inference_s:.2f} s); {', '.join(b.providers)}"
        for b in report.backends
    ]
    comparison = report.comparison
    if comparison is not None:
        a, b = comparison.backends
        if comparison.agrees(max_delta_mm):
            verdict = f"agree within {max_delta_mm} mm"
        else:
            verdict = f"DISAGREE by more than {max_delta_mm} mm"
        lines.append(
            f"{a} - {b}: {comparison.metric} difference {comparison.difference_mm:+.4f} mm, "
            f"largest joint distance {comparison.max_distance_mm:.4f} mm (image "
            f"{comparison.worst_image_id}, {comparison.worst_joint}); {verdict}"
        )
    return lines


def format_report(report: EvalReport, max_delta_mm: float) -> str:
    """The plain-text table: per action, total, per joint, speed, and the backend comparison."""
    actions, joints = action_table(report), joint_table(report)
    lines = [*report_heading(report), ""]
    lines.append(
        f"{actions[0][0]:<14}{actions[0][1]:>7}" + "".join(f"{n:>12}" for n in actions[0][2:])
    )
    for row in actions[1]:
        lines.append(f"{row[0]:<14}{row[1]:>7}" + "".join(f"{v:>12}" for v in row[2:]))
    lines += ["", f"{joints[0][0]:<21}" + "".join(f"{n:>12}" for n in joints[0][1:])]
    for row in joints[1]:
        lines.append(f"{row[0]:<21}" + "".join(f"{v:>12}" for v in row[1:]))
    return "\n".join([*lines, "", *report_closing(report, max_delta_mm)])


def _batches(items: Sequence[Sample], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_backends(
    samples: Sequence[Sample],
    backends: Sequence[Backend],
    spec: VariantSpec,
    *,
    flip: bool = True,
    batch_size: int = 16,
    workers: int = 2,
    progress: ProgressCallback | bool | None = None,
    loader: Callable[[Sample], np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], float, dict[str, float]]:
    """Coords per backend (N, J, 3), decode seconds, inference seconds per backend.

    progress: called as progress("eval", frames done, frames) after each batch."""
    if batch_size < 1 or workers < 0:
        raise UsageError(f"batch size must be >= 1 and workers >= 0 ({batch_size}, {workers})")

    def load(sample: Sample) -> np.ndarray:
        return load_input(sample.image_path, sample.bbox, spec, sample.image_size)

    load = loader or load
    outputs: dict[str, list[np.ndarray]] = {b.name: [] for b in backends}
    inference = dict.fromkeys(outputs, 0.0)
    decode = 0.0
    report = progress_callback(progress)
    report("eval", 0, len(samples))
    done = 0
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 0 else None
    try:
        for batch in _batches(samples, batch_size):
            start = time.perf_counter()
            decoded = list(pool.map(load, batch)) if pool else [load(s) for s in batch]
            images = np.stack(decoded).astype(np.float32, copy=False)
            decode += time.perf_counter() - start
            for backend in backends:
                start = time.perf_counter()
                outputs[backend.name].append(predict(backend, images, spec, flip))
                inference[backend.name] += time.perf_counter() - start
            done += len(batch)
            report("eval", done, len(samples))
    finally:
        if pool:
            pool.shutdown(wait=True)
    coords = {name: np.concatenate(parts) for name, parts in outputs.items()}
    return coords, decode, inference


def score(
    dataset: H36MDataset, coords: np.ndarray, spec: VariantSpec
) -> tuple[np.ndarray, np.ndarray, MetricSummary]:
    """Coords (N, J, 3) -> (absolute camera-mm prediction, scored prediction, summary)."""
    samples = dataset.samples
    pred_cam = back_project(
        coords,
        np.array([s.bbox for s in samples]),
        np.array([s.root_depth for s in samples]),
        np.array([s.focal for s in samples]),
        np.array([s.center for s in samples]),
        spec.heatmap_hw,
        spec.depth_dim,
        float(spec.bbox_3d_shape_mm[0]),
    )
    gt = np.stack([s.joints_cam for s in samples])
    scored, gt_scored = scored_poses(pred_cam, gt, spec.root_index, dataset.protocol)
    joints = eval_joint_indices(spec.joint_names)
    errors = joint_errors(scored, gt_scored, joints)
    names = [spec.joint_names[i] for i in joints]
    summary = summarize(errors, [s.action_index for s in samples], names, dataset.metric)
    return pred_cam, scored, summary


def evaluate(
    dataset: H36MDataset,
    backends: Sequence[Backend],
    spec: VariantSpec,
    *,
    flip: bool = True,
    batch_size: int = 16,
    workers: int = 2,
    progress: ProgressCallback | bool | None = None,
) -> EvalReport:
    """Run every backend over the dataset, score each, and compare the first two.

    progress: a callback for the inference loop (converter.core.progress); the library draws
    nothing itself."""
    names = [b.name for b in backends]
    if not backends or len(set(names)) != len(names):
        raise UsageError(f"need one or more distinct backends, got {names}")
    coords, decode_s, inference_s = run_backends(
        dataset.samples,
        backends,
        spec,
        flip=flip,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )
    results = []
    for backend in backends:
        pred_cam, scored, summary = score(dataset, coords[backend.name], spec)
        results.append(
            BackendResult(
                name=backend.name,
                device=backend.device,
                providers=tuple(backend.providers),
                summary=summary,
                frames=len(dataset),
                decode_s=decode_s,
                inference_s=inference_s[backend.name],
                coords=coords[backend.name],
                pred_cam=pred_cam,
                scored=scored,
            )
        )
    image_ids = tuple(s.image_id for s in dataset.samples)
    comparison = None
    if len(results) >= 2:
        first, second = results[0], results[1]
        comparison = compare_backends(
            (first.name, second.name),
            (first.summary, second.summary),
            (first.scored, second.scored),
            image_ids,
            eval_joint_indices(spec.joint_names),
            spec.joint_names,
        )
    return EvalReport(
        variant=spec.name,
        protocol=dataset.protocol,
        metric=dataset.metric,
        frames=len(dataset),
        flip=flip,
        layout=dataset.layout.describe(),
        bbox_source=dataset.bbox_source,
        batch_size=batch_size,
        workers=workers,
        backends=tuple(results),
        comparison=comparison,
        image_ids=image_ids,
    )


def prediction_files(backends: Sequence[str]) -> tuple[str, ...]:
    """The file names write_predictions gives each backend's predictions."""
    return tuple(RESULT_FILE.format(backend=name) for name in backends)


def write_predictions(
    report: EvalReport,
    dataset: H36MDataset,
    spec: VariantSpec,
    directory: str | Path,
    overwrite: bool = False,
    outputs: OutputSet | None = None,
) -> list[Path]:
    """One file per backend in the reference's result format:
    [{image_id, joint_cam (scored joints, root-relative mm), bbox, root_cam}].

    Each file is published whole (with outputs, as part of that set); without overwrite an
    existing file is kept and refused."""
    directory = make_output_dir(Path(directory))
    joints = list(eval_joint_indices(spec.joint_names))
    written = []
    for result in report.backends:
        rows = [
            {
                "image_id": sample.image_id,
                "joint_cam": result.scored[i, joints].tolist(),
                "bbox": list(sample.bbox),
                "root_cam": list(sample.root_cam),
            }
            for i, sample in enumerate(dataset.samples)
        ]
        path = directory / RESULT_FILE.format(backend=result.name)
        content = json.dumps(rows).encode("utf-8")
        written.append(
            outputs.write(path, content) if outputs else write_output(path, content, overwrite)
        )
    return written
