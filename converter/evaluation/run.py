"""One Human3.6M evaluation run, as named stages: options -> plan -> run -> verdict.

EvalOptions is the run's one options value, checked whole when built. plan_evaluation reads and
checks everything (outputs never inside the dataset or over earlier results without force, the
checkpoint, the graph's variant and precision, the data set) and opens the backends, so every
refusal comes before the long part; run_evaluation runs and scores them and writes what was
asked. Warnings and notes travel in the plan and the result, for the caller to show.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints.canonical import CanonicalCheckpoint, load_checkpoint, random_checkpoint
from ..core.atomic import check_output_dir, output_set
from ..core.choices import EVAL_BACKENDS as BACKENDS
from ..core.errors import OptionError, UsageError, VariantMismatchError
from ..core.progress import ProgressCallback
from ..core.variants import VariantSpec, get_variant
from ..graphs.facts import graph_precision
from ..graphs.metadata import OnnxMetadata, load_onnx_model, read_onnx_metadata
from ..h36m.dataset import H36MDataset, load_dataset
from ..runtimes.sessions import check_device, check_runtime
from ..runtimes.watched import check_time_limit
from ..verdicts.tolerances import EVAL_MAX_DELTA_MM, judged_precision
from .evaluate import (
    Backend,
    EvalReport,
    OnnxBackend,
    evaluate,
    onnx_backend,
    prediction_files,
    torch_backend,
    write_predictions,
)
from .visualize import write_visualisations

SKIPPED_SHOWN = 5  # skipped images named in the warning; the result lists all


def _default_workers() -> int:
    return min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how (field names are the CLI's option names).

    data: a Human3.6M root (reference or Kaggle layout); images: the images root when it is not
    found from data. backend: any of torch (needs checkpoint) and onnx (needs onnx), the first
    two compared. protocol: 1 (S11, PA-MPJPE) or 2 (S9+S11, MPJPE). bbox_root: RootNet boxes and
    root depths instead of the ground truth. limit: N frames spread evenly over the test set.
    batch: images per inference call; workers: threads decoding and cropping. device: auto, cpu
    or cuda; threads: the graph runtime's. max_delta_mm: the largest metric difference between
    the backends that passes (None: by the graph's precision, tolerances.EVAL_MAX_DELTA_MM).
    predictions / vis: folders for the reference-format results and a few pictures; force:
    replace result files already there. skip_missing: evaluate the frames whose image exists.
    timeout: seconds one forward pass of the graph may take (None: the default for its batch).
    """

    data: Path
    checkpoint: Path | None = None
    onnx: Path | None = None
    variant: str | None = None
    images: Path | None = None
    protocol: int = 2
    bbox_root: Path | None = None
    limit: int | None = None
    batch: int = 16
    workers: int = field(default_factory=_default_workers)
    backend: tuple[str, ...] = BACKENDS
    device: str = "auto"
    threads: int | None = None
    runtime: str = "onnxruntime"
    ov_precision: str = "auto"
    flip: bool = True
    max_delta_mm: float | None = None
    predictions: Path | None = None
    vis: Path | None = None
    force: bool = False
    skip_missing: bool = False
    timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", check_time_limit(self.timeout))
        for name in ("data", "checkpoint", "onnx", "images", "bbox_root", "predictions", "vis"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        names = tuple(dict.fromkeys(name.strip().lower() for name in self.backend))
        unknown = [name for name in names if name not in BACKENDS]
        if unknown or not names:
            raise OptionError("backend", f"must name {' and/or '.join(BACKENDS)}, not {unknown}")
        object.__setattr__(self, "backend", names)
        if "torch" in names and self.checkpoint is None and self.variant is None:
            raise UsageError(
                "the torch backend needs weights",
                remedies=[("checkpoint", ""), ("variant", "V for seeded random weights")],
            )
        if "onnx" in names and self.onnx is None:
            raise UsageError("the onnx backend needs a graph", remedies=[("onnx", "")])
        if self.protocol not in (1, 2):
            raise OptionError("protocol", f"must be 1 or 2, not {self.protocol!r}")
        for name, lowest in (("limit", 1), ("batch", 1), ("workers", 0), ("threads", 1)):
            number = getattr(self, name)
            if number is not None and (isinstance(number, bool) or int(number) < lowest):
                raise OptionError(name, f"must be at least {lowest}, not {number!r}")
        if self.max_delta_mm is not None and not (
            math.isfinite(self.max_delta_mm) and self.max_delta_mm > 0
        ):
            raise OptionError(
                "max_delta_mm", f"must be a positive finite number, not {self.max_delta_mm!r}"
            )
        if self.variant is not None:
            object.__setattr__(self, "variant", get_variant(self.variant).name)
        object.__setattr__(self, "device", check_device(self.device))
        runtime = check_runtime(self.runtime, self.ov_precision, self.device)
        object.__setattr__(self, "runtime", runtime)


@dataclass(frozen=True)
class EvalPlan:
    """Everything checked and opened, nothing run yet."""

    options: EvalOptions
    spec: VariantSpec
    dataset: H36MDataset
    backends: tuple[Backend, ...]
    precision: str  # what the graph is judged as (its ops, or coarser where the runtime says)
    max_delta_mm: float
    weights: dict[str, str | None]  # where each side's weights came from
    weights_sha256: str | None
    warnings: tuple[str, ...]
    notes: tuple[str, ...]  # choices made for the user (auto's CPU fallback), said calmly


@dataclass(frozen=True)
class EvalRun:
    """An evaluation's result: the report, what was written, and whether the backends agree."""

    plan: EvalPlan
    report: EvalReport
    predictions: tuple[Path, ...]
    pictures: tuple[Path, ...]

    @property
    def agrees(self) -> bool | None:
        """None with one backend (nothing to compare)."""
        comparison = self.report.comparison
        return None if comparison is None else comparison.agrees(self.plan.max_delta_mm)

    @property
    def precision_change_mm(self) -> float | None:
        """A reduced-precision graph's metric change against fp32 PyTorch (None otherwise)."""
        names = self.plan.options.backend
        if self.plan.precision == "fp32" or "torch" not in names or "onnx" not in names:
            return None
        onnx, torch = self.report.backend("onnx"), self.report.backend("torch")
        return onnx.summary.total_mm - torch.summary.total_mm

    def failure(self) -> str | None:
        """Why the run failed its check (the backends differ by more than allowed), or None."""
        comparison = self.report.comparison
        if self.agrees is not False or comparison is None:
            return None
        first, second = comparison.backends
        return (
            f"{first} and {second} {comparison.metric} differ by "
            f"{abs(comparison.difference_mm):.4f} mm > {self.plan.max_delta_mm} mm allowed"
        )

    def to_dict(self) -> dict[str, object]:
        plan, options = self.plan, self.plan.options
        return {
            **self.report.to_dict(),
            "onnx": str(options.onnx) if "onnx" in options.backend else None,
            "checkpoint": str(options.checkpoint) if options.checkpoint is not None else None,
            "weights_sha256": plan.weights_sha256,
            "weights": plan.weights,
            "onnx_precision": plan.precision,
            "max_delta_mm": plan.max_delta_mm,
            "agree": self.agrees,
            "predictions": [str(p) for p in self.predictions],
            "vis": [str(p) for p in self.pictures],
            "skipped_missing": [str(p) for p in plan.dataset.skipped],
        }


def _graph_facts(path: Path) -> tuple[OnnxMetadata | None, str]:
    """The graph's metadata and its precision, read once (with embedded weights this parses the
    whole file). The precision comes from the ops, never the metadata: a disagreement is bad
    input."""
    proto = load_onnx_model(path)
    metadata = read_onnx_metadata(proto)
    precision = graph_precision(proto)
    if metadata is not None and metadata.precision != precision:
        raise UsageError(
            f"{path}: the metadata says precision {metadata.precision!r} but the graph's ops "
            f"are {precision}"
        )
    return metadata, precision


def _resolve_spec(
    ckpt: CanonicalCheckpoint | None,
    graph: Path | None,
    metadata: OnnxMetadata | None,
    variant: str | None,
    warnings: list[str],
) -> VariantSpec:
    """The variant from the checkpoint and/or the graph's metadata; they must agree."""
    spec = ckpt.spec if ckpt is not None else None
    if metadata is not None:
        if spec is not None and metadata.variant != spec.name:
            raise VariantMismatchError(
                f"{graph}: exported from {metadata.variant}, but the checkpoint is {spec.name}"
            )
        if ckpt is not None and metadata.weights_sha256 != ckpt.metadata.weights_sha256:
            warnings.append(f"{graph}: exported from other weights than the checkpoint's")
        spec = spec or get_variant(metadata.variant)
    if variant is not None:
        if spec is not None and variant != spec.name:
            raise VariantMismatchError(
                f"variant {variant} was asked for, but the model is {spec.name}"
            )
        spec = get_variant(variant)
    if spec is None:
        raise UsageError(f"{graph}: no cnp-convert metadata in it", remedies=[("variant", "V")])
    return spec


def _skipped_warning(dataset: H36MDataset, limit: int | None) -> str:
    skipped = dataset.skipped
    total = len(skipped) + len(dataset.samples) if limit is None else None
    of = f" of {total}" if total is not None else ""
    first = ", ".join(str(p) for p in skipped[:SKIPPED_SHOWN])
    return (
        f"skipped {len(skipped)}{of} test frames whose image is missing (first "
        f"{min(SKIPPED_SHOWN, len(skipped))}: {first})"
        + ("; the JSON result lists them all" if len(skipped) > SKIPPED_SHOWN else "")
    )


def plan_evaluation(options: EvalOptions) -> EvalPlan:
    """Check and open everything the run needs, in the order that refuses cheapest first."""
    names = options.backend
    # Where results go is checked before anything is loaded or run: never inside the dataset,
    # never over earlier results without force.
    inputs = (options.data,) if options.images is None else (options.data, options.images)
    if options.predictions is not None:
        check_output_dir(options.predictions, inputs, options.force, prediction_files(names))
    if options.vis is not None:
        check_output_dir(options.vis, inputs, options.force)
    ckpt = None
    if "torch" in names and options.checkpoint is not None:
        ckpt = load_checkpoint(options.checkpoint, options.variant)
    elif "torch" in names:  # the variant alone: the seeded weights onnx --variant exports
        ckpt = random_checkpoint(get_variant(str(options.variant)), seed=0)
    graph = options.onnx if "onnx" in names else None
    metadata, precision = _graph_facts(graph) if graph is not None else (None, "fp32")
    warnings: list[str] = []
    notes: list[str] = []
    spec = _resolve_spec(ckpt, graph, metadata, options.variant, warnings)
    weights = {
        "checkpoint": ckpt.metadata.weights if ckpt is not None else None,
        "graph": metadata.weights if metadata is not None else None,
    }
    digest = ckpt.metadata.weights_sha256 if ckpt is not None else None
    if digest is None and metadata is not None:
        digest = metadata.weights_sha256
    if "random" in weights.values():
        warnings.append(
            "random (seeded) weights: the MPJPE itself means nothing, only the backend delta"
        )
    dataset = load_dataset(
        options.data,
        options.protocol,
        images=options.images,
        bbox_root=options.bbox_root,
        input_hw=spec.input_hw,
        limit=options.limit,
        skip_missing=options.skip_missing,
    )
    if dataset.skipped:
        warnings.append(_skipped_warning(dataset, options.limit))
    backends: list[Backend] = []
    for name in names:
        if name == "torch":
            backends.append(torch_backend(ckpt, options.device))
            continue
        assert graph is not None
        runner: OnnxBackend = onnx_backend(
            graph, options.device, options.threads, options.runtime, options.ov_precision,
            time_limit_s=options.timeout,
        )  # fmt: skip
        if runner.fallback_reason and options.device == "auto":
            # auto asked for nothing: a note, as verify and bench say it, not a warning.
            notes.append(f"auto: onnxruntime runs on CPU ({runner.fallback_reason})")
        elif runner.fallback_reason:
            warnings.append(f"onnxruntime runs on CPU: {runner.fallback_reason}")
        # An fp32 graph that OpenVINO runs in bf16 is held to bf16's limit.
        precision = judged_precision(precision, runner.execution_precision)
        backends.append(runner)
    if len({b.device for b in backends}) > 1:
        warnings.append(
            "the backends run on different devices: "
            + ", ".join(f"{b.name} on {b.device}" for b in backends)
        )
    max_delta = options.max_delta_mm
    return EvalPlan(
        options=options,
        spec=spec,
        dataset=dataset,
        backends=tuple(backends),
        precision=precision,
        max_delta_mm=EVAL_MAX_DELTA_MM[precision] if max_delta is None else max_delta,
        weights=weights,
        weights_sha256=digest,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def run_evaluation(plan: EvalPlan, progress: ProgressCallback | None = None) -> EvalRun:
    """Run and score every backend, then write the predictions and pictures asked for."""
    options = plan.options
    report = evaluate(
        plan.dataset,
        plan.backends,
        plan.spec,
        flip=options.flip,
        batch_size=options.batch,
        workers=options.workers,
        progress=progress,
    )
    written, pictures = [], []
    # Predictions and pictures are published together: an interrupt or a refusal leaves the
    # earlier set as it was, never new predictions beside old pictures.
    with output_set(overwrite=options.force) as outputs:
        if options.predictions is not None:
            written = write_predictions(
                report, plan.dataset, plan.spec, options.predictions, outputs=outputs
            )
        if options.vis is not None:
            pictures = write_visualisations(
                report, plan.dataset, plan.spec, options.vis, outputs=outputs
            )
    return EvalRun(plan, report, tuple(written), tuple(pictures))
