"""Does this ONNX file compute what the PyTorch model of this checkpoint computes?

Before any numerics: the file must be an ONNX graph with a 256x256 image input, its metadata
(variant, depth_dim, heatmap size, weights sha256) must agree with the checkpoint, and the
precision its metadata claims must be the one its ops and initializers show. A graph without
our metadata is verified only when the caller names the variant, with a warning. Then the
verdict of converter.verdicts.judge: fp32 against the float64 floor, fp16/int8 by the pose change
in millimetres. Inputs come from a fresh seed each run (reported; seed= repeats a run).

A failed verdict raises ParityFailedError (a CheckFailedError, exit 1) that carries the report,
so a CLI can print the evidence before it fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from ..checkpoints.canonical import CanonicalCheckpoint, build_loaded_model
from ..core.choices import POSE_FRAMES
from ..core.choices import VERIFY_SAMPLES as DEFAULT_SAMPLES
from ..core.errors import OnnxModelError, OptionError, VariantMismatchError
from ..core.variants import VariantSpec, get_variant
from ..graphs.facts import format_shape, graph_facts, graph_precision, variant_disagreements
from ..graphs.metadata import OnnxMetadata, load_onnx_model, read_onnx_metadata
from ..h36m.crops import Crops, dataset_crops
from ..h36m.dataset import load_dataset
from ..h36m.synthetic import synthetic_crops
from ..runtimes.sessions import (
    Session,
    check_device,
    check_runtime,
    open_onnx_session,
    open_session,
    resolve_torch_device,
)
from ..runtimes.watched import check_time_limit
from .judge import (
    FP32_CROPS,
    ParityFailedError,
    pose_crop_sets,
    resolve_seed,
    run_fp32_verdict,
    run_pose_verdicts,
    verdict_images,
)
from .parity import ParityReport, PoseChange
from .tolerances import PRECISIONS, fp32_limits, judged_precision

DEFAULT_BATCHES = (1, 4)

MAX_SAMPLES = 4096  # seeded images are held in memory with their outputs: 4096 L images ~ 3 GB
MAX_BATCH = 256

__all__ = ["ParityFailedError", "VerifyOptions", "VerifyReport", "verify_onnx"]


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify a graph (verify_onnx's one options value, checked whole when built, before
    any file is read; field names are the CLI's option names).

    device: auto, cpu or cuda (auto: CUDA only where both PyTorch and the runtime really run
    it). batch: the batch sizes to run (None: 1 and 4, or a fixed-batch graph's own). samples
    (fp32): seeded images per batch size, beside the real crops. atol (fp32): a limit on coords
    (heatmap units) instead of the floor rule; a mapping sets any output's. variant: required
    for a graph without cnp-convert metadata. seed: the inputs' seed (None: a fresh one,
    reported). data (fp16/int8): a Human3.6M root whose frames the pose change is measured on
    (None: the synthetic set), frames of them. runtime: onnxruntime, openvino, opencv or tflite
    (the last three on the CPU; tflite judges the .tflite onnx2tf makes of the graph);
    ov_precision: OpenVINO's execution precision (auto: its own choice).
    timeout: seconds one forward pass may take (None: runtimes.watched's default for its batch).
    The verdict follows what the runtime reports it computes in: an fp32 graph that OpenVINO runs
    in bf16 is judged by the bf16 pose budget.
    """

    device: str = "auto"
    batch: tuple[int, ...] | None = None
    samples: int = DEFAULT_SAMPLES
    atol: float | Mapping[str, float] | None = None
    variant: str | None = None
    seed: int | None = None
    data: str | Path | None = None
    frames: int = POSE_FRAMES
    runtime: str = "onnxruntime"
    ov_precision: str = "auto"
    timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", check_time_limit(self.timeout))
        for name, number in (("samples", self.samples), ("frames", self.frames)):
            if isinstance(number, bool) or not 1 <= int(number) <= MAX_SAMPLES:
                raise OptionError(name, f"must be from 1 to {MAX_SAMPLES}, not {number!r}")
        if self.batch is not None:
            sizes = tuple(self.batch)
            if not sizes or any(isinstance(b, bool) or not 1 <= int(b) <= MAX_BATCH for b in sizes):
                raise OptionError(
                    "batch", f"sizes must be integers from 1 to {MAX_BATCH}, not {list(sizes)}"
                )
            object.__setattr__(self, "batch", tuple(int(b) for b in sizes))
        if self.seed is not None:
            resolve_seed(self.seed)
        if self.atol is not None:
            fp32_limits(("coords", "heatmaps"), self.atol)  # positive and finite
        if self.variant is not None:
            object.__setattr__(self, "variant", get_variant(self.variant).name)
        object.__setattr__(self, "device", check_device(self.device))
        # all of it (OpenVINO: its precision option, the device, the installation)
        object.__setattr__(
            self, "runtime", check_runtime(self.runtime, self.ov_precision, self.device)
        )
        object.__setattr__(self, "ov_precision", self.ov_precision.strip().lower())


class MetadataMismatchError(OnnxModelError):
    """The ONNX metadata says the graph belongs to other weights or another variant (exit 2)."""


@dataclass(frozen=True)
class VerifyReport:
    onnx_path: str
    variant: str
    checkpoint: str
    weights: str
    weights_sha256: str
    metadata_present: bool
    onnx_device: str
    providers: tuple[str, ...]
    torch_device: str
    device_note: str | None
    samples: int
    crops: int
    batches: tuple[int, ...]
    seed: int
    precision: str  # what the run is judged as: the graph's, or coarser if the runtime says so
    limits: dict[str, str]  # per output, the rule it was judged by
    results: tuple[ParityReport, ...]  # fp32 graphs
    pose: tuple[PoseChange, ...]  # fp16 / int8 graphs
    warnings: tuple[str, ...]
    seconds: float
    graph_precision: str = "fp32"  # read from the graph's ops and initializers
    runtime: str = "onnxruntime"
    execution_precision: str | None = None  # what OpenVINO reports it computes in

    @property
    def passed(self) -> bool:
        checks = (*self.results, *self.pose)
        return bool(checks) and all(c.passed for c in checks)

    def to_dict(self) -> dict[str, object]:
        return {
            "onnx": self.onnx_path,
            "variant": self.variant,
            "checkpoint": self.checkpoint,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "metadata_present": self.metadata_present,
            "onnx_device": self.onnx_device,
            "providers": list(self.providers),
            "torch_device": self.torch_device,
            "device_note": self.device_note,
            "samples": self.samples,
            "crops": self.crops,
            "batches": list(self.batches),
            "seed": self.seed,
            "precision": self.precision,
            "precision_source": "graph" if self.execution_precision is None else "runtime",
            "graph_precision": self.graph_precision,
            "runtime": self.runtime,
            "execution_precision": self.execution_precision,
            "limits": self.limits,
            "results": [r.to_dict() for r in self.results],
            "pose_change": [p.to_dict() for p in self.pose],
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
        }

    def heading(self) -> list[str]:
        """The lines above the per-batch results: what was compared, where, on what."""
        inputs = (
            f"{self.samples} seeded images + {self.crops} crops per batch size"
            if self.precision == "fp32"
            else f"{self.crops} crops"
        )
        out = [
            f"verify {self.onnx_path} against {self.checkpoint}: ConvNeXtPose-{self.variant}, "
            f"weights {self.weights}, sha256 {self.weights_sha256[:12]}",
            f"  {self.runtime} on {self.onnx_device} ({', '.join(self.providers)}), "
            f"PyTorch on {self.torch_device}; {inputs}, seed {self.seed}; "
            f"graph precision {self.graph_precision} (read from its ops)"
            + (
                f", executed in {self.execution_precision}: judged as {self.precision}"
                if self.execution_precision is not None
                else ""
            ),
        ]
        if self.device_note:
            out.append(f"  note: {self.device_note}")
        return out

    def lines(self) -> list[str]:
        out = self.heading()
        for report in self.results:
            for entry in report.outputs:
                out.append(f"  batch {report.batch}: {entry.line()}")
        for change in self.pose:
            out.append(f"  batch {change.batch}: {change.line()}")
        out.append(f"{'PASS' if self.passed else 'FAIL'} in {self.seconds:.1f} s")
        return out


def check_variant_option(path: str | Path, meta: OnnxMetadata | None, variant: str | None) -> None:
    """The variant asked for against the graph's metadata; cheap, so callers run it before
    loading weights."""
    if variant is not None and meta is not None and get_variant(variant).name != meta.variant:
        raise VariantMismatchError(
            f"{path}: variant {get_variant(variant).name} was asked for, but the graph's "
            f"metadata says {meta.variant}"
        )


def _check_metadata(
    path: Path, meta: OnnxMetadata, ckpt: CanonicalCheckpoint, variant: str | None
) -> list[str]:
    """Errors for a graph of another variant or other weights; warnings for lesser doubts.

    The weights digest decides, not the source file's sha256: the same weights reach us in
    several containers (the Drive .tar, its unzipped folder, a canonical file).
    """
    spec, cmeta = ckpt.spec, ckpt.metadata
    check_variant_option(path, meta, variant)
    pairs = [
        ("variant", meta.variant, spec.name),
        ("depth_dim", meta.depth_dim, spec.depth_dim),
        ("heatmap size", "x".join(map(str, meta.heatmap_hw)), "x".join(map(str, spec.heatmap_hw))),
    ]
    for what, in_graph, in_ckpt in pairs:
        if in_graph != in_ckpt:
            raise VariantMismatchError(
                f"{path}: the graph's {what} is {in_graph} but the checkpoint "
                f"({cmeta.source_name}) has {in_ckpt}"
            )
    if meta.weights_sha256 != cmeta.weights_sha256:
        raise MetadataMismatchError(
            f"{path}: exported from other weights (weights sha256 {meta.weights_sha256[:16]}… "
            f"in the graph, {cmeta.weights_sha256[:16]}… in {cmeta.source_name})"
        )
    notes = []
    if meta.weights != cmeta.weights:
        notes.append(f"{path} records weights={meta.weights}, the checkpoint {cmeta.weights}")
    return notes


def _choose_devices(
    path: Path,
    device: str,
    runtime: str = "onnxruntime",
    ov_precision: str = "auto",
    time_limit_s: float | None = None,
) -> tuple[Session, torch.device, str | None]:
    """Both backends on the same device family; auto means CUDA only where both really run it."""
    if runtime != "onnxruntime":  # OpenVINO and OpenCV run on the CPU here, and so does torch
        return (
            open_session(
                path, runtime, device, ov_precision=ov_precision, time_limit_s=time_limit_s
            ),
            torch.device("cpu"),
            None,
        )
    torch_device = resolve_torch_device(device)  # "cuda" without torch CUDA raises here
    note = None
    if device.strip().lower() == "auto" and torch_device.type == "cpu":
        session = open_onnx_session(path, "cpu", time_limit_s=time_limit_s)
        if torch.version.cuda is None:
            note = "auto: PyTorch is a CPU-only build, so both backends run on CPU"
        else:
            note = "auto: PyTorch sees no GPU, so both backends run on CPU"
        return session, torch_device, note
    session = open_onnx_session(path, device, time_limit_s=time_limit_s)
    if session.device != torch_device.type:
        # auto: onnxruntime fell back to CPU although torch has CUDA; compare like with like.
        torch_device = torch.device("cpu")
        note = f"auto: {session.fallback_reason}; both backends run on CPU"
    return session, torch_device, note


def _batch_sizes(batches: tuple[int, ...] | None, fixed: int | None) -> tuple[int, ...]:
    if batches is None:
        return (fixed,) if fixed is not None else DEFAULT_BATCHES
    if fixed is not None and any(b != fixed for b in batches):
        raise OptionError(
            "batch", f"{list(batches)}: the graph has a fixed batch of {fixed}, nothing else runs"
        )
    return batches


def _checkpoint_label(ckpt: CanonicalCheckpoint) -> str:
    """The file the user gave, with the release it came from when that differs."""
    source = ckpt.metadata.source_name
    if ckpt.raw is None:
        return source
    given = str(ckpt.raw.path)
    return given if Path(given).name == source else f"{given} (from {source})"


def _check_precision(path: Path, proto: onnx.ModelProto, meta: OnnxMetadata | None) -> str:
    """The graph's precision from its ops; metadata that claims another one is bad input."""
    precision = graph_precision(proto)
    if meta is not None and meta.precision != precision:
        raise OnnxModelError(
            f"{path}: the metadata says precision {meta.precision!r} but the graph's ops and "
            f"initializers are {precision}; the tolerance is never taken from metadata alone"
        )
    return precision


def _pose_crops(spec: VariantSpec, seed: int, frames: int, data: str | Path | None) -> Crops:
    if data is None:
        return synthetic_crops(spec, frames, seed)
    dataset = load_dataset(data, 2, input_hw=spec.input_hw)
    return dataset_crops(dataset, spec, frames, seed)


def verify_onnx(
    onnx_path: str | Path, ckpt: CanonicalCheckpoint, options: VerifyOptions | None = None
) -> VerifyReport:
    """Check metadata and precision, then run the verdict (VerifyOptions says how; None: the
    defaults); raises on any failure."""
    started = time.perf_counter()
    path = Path(onnx_path)
    options = options if options is not None else VerifyOptions()
    seed = resolve_seed(options.seed)
    variant, atol, runtime = options.variant, options.atol, options.runtime
    spec = ckpt.spec
    if variant is not None and variant != spec.name:
        raise VariantMismatchError(
            f"variant {variant} was asked for, but the checkpoint "
            f"({ckpt.metadata.source_name}) is {spec.name}"
        )
    proto = load_onnx_model(path)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # ValidationError
        first = str(exc).strip().splitlines()[0]
        raise OnnxModelError(f"{path}: not a valid ONNX model ({first})") from None
    meta = read_onnx_metadata(proto)
    warnings: list[str] = []
    if meta is None:
        if variant is None:
            raise OnnxModelError(
                f"{path}: has no cnp-convert metadata",
                remedies=[("variant", "to verify it anyway")],
            )
        warnings.append(
            f"{path} has no cnp-convert metadata: variant {spec.name} as asked for, weights "
            "provenance unchecked"
        )
    else:
        warnings.extend(_check_metadata(path, meta, ckpt, variant))
    precision = _check_precision(path, proto, meta)
    if precision not in PRECISIONS:
        raise OnnxModelError(f"{path}: unsupported precision {precision!r}")
    if atol is not None and precision != "fp32":
        raise OptionError(
            "atol", f"applies to fp32 graphs; {path} is {precision}, judged by its pose budget"
        )
    facts = graph_facts(proto)
    if facts.input_shape is None or len(facts.input_shape) != 4:
        raise OnnxModelError(
            f"{path}: input is {format_shape(facts.input_shape)}, expected N x 3 x 256 x 256"
        )
    h, w = spec.input_hw
    if tuple(facts.input_shape[1:]) != (3, h, w):
        raise OnnxModelError(
            f"{path}: input is {format_shape(facts.input_shape)}; ConvNeXtPose takes "
            f"N x 3 x {h} x {w} (a graph exported at another size cannot be verified)"
        )
    problems = variant_disagreements(facts, spec)
    if problems:
        raise VariantMismatchError(
            f"{path}: the graph does not fit ConvNeXtPose-{spec.name}: {'; '.join(problems)}"
        )
    graph_outputs = tuple(facts.output_shapes)
    if meta is not None:
        missing = [o for o in meta.outputs if o not in graph_outputs]
        if missing:
            raise OnnxModelError(f"{path}: metadata names outputs {missing} the graph lacks")
        output_map = {name: name for name in meta.outputs}
    else:
        # Without metadata: first output coords, second (if any) heatmaps, as we export them.
        output_map = dict(zip(("coords", "heatmaps"), graph_outputs, strict=False))
    limits = fp32_limits(
        ("coords", "heatmaps"), atol, divided_by_mass=facts.divides_by_mass(output_map["coords"])
    )
    fixed = facts.input_shape[0] if isinstance(facts.input_shape[0], int) else None
    batch_sizes = _batch_sizes(options.batch, fixed)
    session, torch_device, note = _choose_devices(
        path, options.device, runtime, options.ov_precision, options.timeout
    )
    stored_precision = precision
    execution_precision = session.execution_precision
    precision = judged_precision(precision, execution_precision)
    if atol is not None and precision != "fp32":
        raise OptionError(
            "atol", f"applies to fp32 runs; {path} runs in {precision} here, judged by its budget"
        )
    crops = _pose_crops(spec, seed, options.frames, options.data) if precision != "fp32" else None
    model = build_loaded_model(ckpt)
    results: tuple[ParityReport, ...] = ()
    pose: tuple[PoseChange, ...] = ()
    if crops is None:
        images = verdict_images(spec, options.samples, seed, FP32_CROPS)
        results = run_fp32_verdict(
            model,
            session,
            images,
            batch_sizes,
            {name: limits[name] for name in output_map},
            torch_device=torch_device,
            spec=spec,
            output_map=output_map,
        )
    else:
        crop_sets = pose_crop_sets(spec, crops)
        pose = run_pose_verdicts(
            model,
            session,
            crop_sets,
            batch_sizes,
            precision=precision,
            torch_device=torch_device,
            spec=spec,
            coords_name=output_map["coords"],
        )
    report = VerifyReport(
        onnx_path=str(path),
        variant=spec.name,
        checkpoint=_checkpoint_label(ckpt),
        weights=ckpt.metadata.weights,
        weights_sha256=ckpt.metadata.weights_sha256,
        metadata_present=meta is not None,
        onnx_device=session.device,
        providers=session.providers,
        torch_device=str(torch_device),
        device_note=note or session.fallback_reason,
        samples=options.samples if crops is None else 0,
        crops=FP32_CROPS if crops is None else sum(len(c) for c in crop_sets),
        batches=batch_sizes,
        seed=seed,
        precision=precision,
        limits={name: limits[name].describe() for name in output_map}
        if crops is None
        else {"pose": f"{precision} budget"},
        results=results,
        pose=pose,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
        graph_precision=stored_precision,
        runtime=runtime,
        execution_precision=execution_precision,
    )
    if not report.passed:
        raise ParityFailedError(f"{path}: {_first_failure(report)}", report)
    return report


def _first_failure(report: VerifyReport) -> str:
    for result in report.results:
        for entry in result.outputs:
            if not entry.passed:
                return (
                    f"parity failed on {report.onnx_device} at batch {result.batch}: {entry.line()}"
                )
    for change in report.pose:
        if not change.passed:
            return f"pose change over budget at batch {change.batch}: {change.line()}"
    return "no check ran"
