"""Does this ONNX file compute what the PyTorch model of this checkpoint computes?

Before any numerics: the file must be an ONNX graph with a 256x256 image input, and its metadata
(variant, depth_dim, heatmap size, weights sha256) must agree with the checkpoint. A graph
without our metadata is verified only when the caller names the variant, with a warning. Then
both backends run the same seeded images in the model's real input range (RGB 0..255 through the
real normalization) at each batch size, on the same device family.

A parity failure raises ParityFailedError (a CheckFailedError, exit 1) that carries the report,
so a CLI can print the evidence before it fails.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from converter.checkpoints.canonical import CanonicalCheckpoint, build_loaded_model
from converter.checkpoints.fabricate import normalize_images, seeded_images
from converter.core.errors import CheckFailedError, OnnxModelError, UsageError, VariantMismatchError
from converter.core.model import ConvNeXtPose
from converter.core.variants import VariantSpec, get_variant
from converter.graphs.facts import format_shape, graph_facts, variant_disagreements
from converter.graphs.metadata import OnnxMetadata, load_onnx_model, read_onnx_metadata
from converter.verdicts.parity import ParityReport, compare_outputs, coords_mm_per_unit
from converter.verdicts.runtime import (
    OnnxSession,
    open_onnx_session,
    resolve_torch_device,
    strict_fp32,
)
from converter.verdicts.tolerances import PRECISIONS, precision_tolerances

VERIFY_SEED = 20231004  # the release date of the checkpoints; any fixed seed would do
DEFAULT_BATCHES = (1, 4)
DEFAULT_SAMPLES = 8


class ParityFailedError(CheckFailedError):
    """Parity ran and failed (exit 1); .report holds the evidence for printing."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


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
    batches: tuple[int, ...]
    atol: dict[str, float]
    results: tuple[ParityReport, ...]
    warnings: tuple[str, ...]
    seconds: float
    precision: str = "fp32"  # the graph's, from its metadata; it picks the default tolerances
    mean_atol: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

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
            "batches": list(self.batches),
            "precision": self.precision,
            "atol": self.atol,
            "mean_atol": self.mean_atol,
            "results": [r.to_dict() for r in self.results],
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
        }

    def lines(self) -> list[str]:
        out = [
            f"verify {self.onnx_path} against {self.checkpoint}: ConvNeXtPose-{self.variant}, "
            f"weights {self.weights}, sha256 {self.weights_sha256[:12]}",
            f"  onnxruntime on {self.onnx_device} ({', '.join(self.providers)}), "
            f"PyTorch on {self.torch_device}; {self.samples} seeded images per batch size; "
            f"graph precision {self.precision}",
        ]
        if self.device_note:
            out.append(f"  note: {self.device_note}")
        for report in self.results:
            for entry in report.outputs:
                out.append(f"  batch {report.batch}: {entry.line()}")
        out.append(f"{'PASS' if self.passed else 'FAIL'} in {self.seconds:.1f} s")
        return out


def _torch_outputs(
    model: ConvNeXtPose, images: np.ndarray, device: torch.device, heatmaps: bool
) -> dict[str, np.ndarray]:
    with torch.inference_mode(), strict_fp32(device):
        x = torch.from_numpy(images).to(device)
        coords, maps = model.forward_heatmaps(x)
        out = {"coords": coords.float().cpu().numpy()}
        if heatmaps:
            out["heatmaps"] = maps.float().cpu().numpy()
    return out


def run_parity(
    model: ConvNeXtPose,
    session: OnnxSession,
    images: np.ndarray,
    batches: Sequence[int],
    atol: Mapping[str, float],
    *,
    torch_device: torch.device,
    spec: VariantSpec,
    output_map: Mapping[str, str] | None = None,
    mean_atol: Mapping[str, float] | None = None,
) -> tuple[ParityReport, ...]:
    """Both backends over all images at each batch size; one ParityReport per batch size.

    Images are taken cyclically so every run is a full batch (fixed-batch graphs need that).
    output_map: our output name -> the graph's (defaults to the same names).
    mean_atol: outputs also judged on their mean abs error (int8: converter.verdicts.tolerances).
    """
    output_map = dict(output_map or {name: name for name in atol})
    heatmaps = "heatmaps" in output_map
    model = model.to(torch_device).eval()
    samples = images.shape[0]
    reports = []
    for batch in batches:
        refs: dict[str, list[np.ndarray]] = {name: [] for name in output_map}
        cands: dict[str, list[np.ndarray]] = {name: [] for name in output_map}
        for run in range(math.ceil(samples / batch)):
            index = [(run * batch + k) % samples for k in range(batch)]
            chunk = np.ascontiguousarray(images[index])
            ref = _torch_outputs(model, chunk, torch_device, heatmaps)
            cand = session.run(chunk)
            for name, graph_name in output_map.items():
                refs[name].append(ref[name])
                cands[name].append(cand[graph_name])
        reports.append(
            compare_outputs(
                {k: np.concatenate(v) for k, v in refs.items()},
                {k: np.concatenate(v) for k, v in cands.items()},
                {name: atol[name] for name in output_map},
                coords_mm=coords_mm_per_unit(spec),
                batch=batch,
                mean_atol=mean_atol,
            )
        )
    return tuple(reports)


def check_variant_option(path: str | Path, meta: OnnxMetadata | None, variant: str | None) -> None:
    """--variant against the graph's metadata; cheap, so callers run it before loading weights."""
    if variant is not None and meta is not None and get_variant(variant).name != meta.variant:
        raise VariantMismatchError(
            f"{path}: --variant {get_variant(variant).name} but the graph's metadata says "
            f"{meta.variant}"
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
    if meta.source_sha256 and cmeta.source_sha256 and meta.source_sha256 != cmeta.source_sha256:
        notes.append(
            f"{path} was exported from another file (source sha256 {meta.source_sha256[:16]}…) "
            "holding the same weights"
        )
    if meta.weights != cmeta.weights:
        notes.append(f"{path} records weights={meta.weights}, the checkpoint {cmeta.weights}")
    return notes


def _choose_devices(path: Path, device: str) -> tuple[OnnxSession, torch.device, str | None]:
    """Both backends on the same device family; auto means CUDA only where both really run it."""
    torch_device = resolve_torch_device(device)  # "cuda" without torch CUDA raises here
    note = None
    if device.strip().lower() == "auto" and torch_device.type == "cpu":
        session = open_onnx_session(path, "cpu")
        if torch.version.cuda is None:
            note = "auto: PyTorch is a CPU-only build, so both backends run on CPU"
        else:
            note = "auto: PyTorch sees no GPU, so both backends run on CPU"
        return session, torch_device, note
    session = open_onnx_session(path, device)
    if session.device != torch_device.type:
        # auto: onnxruntime fell back to CPU although torch has CUDA; compare like with like.
        torch_device = torch.device("cpu")
        note = f"auto: {session.fallback_reason}; both backends run on CPU"
    return session, torch_device, note


def _parse_batches(batches: Sequence[int] | None, fixed: int | None) -> tuple[int, ...]:
    if batches is None:
        return (fixed,) if fixed is not None else DEFAULT_BATCHES
    values = tuple(int(b) for b in batches)
    if not values or any(b < 1 for b in values):
        raise UsageError(f"batch sizes must be positive integers, not {list(batches)}")
    if fixed is not None and any(b != fixed for b in values):
        raise UsageError(
            f"the graph has a fixed batch of {fixed}; cannot run batch sizes {list(values)}"
        )
    return values


def _checkpoint_label(ckpt: CanonicalCheckpoint) -> str:
    """The file the user gave, with the release it came from when that differs."""
    raw = getattr(ckpt, "raw", None)
    source = ckpt.metadata.source_name
    if raw is None:
        return source
    given = str(raw.path)
    return given if Path(given).name == source else f"{given} (from {source})"


def _tolerances(
    given: float | Mapping[str, float] | None,
    defaults: Mapping[str, float],
    outputs: Mapping[str, str],
) -> dict[str, float]:
    """Per-output limits: a float overrides coords, a mapping any output, else the defaults."""
    if isinstance(given, Mapping):
        merged = {**defaults, **{k: float(v) for k, v in given.items()}}
    else:
        merged = dict(defaults)
        if given is not None:
            merged["coords"] = float(given)
    return {name: merged[name] for name in outputs if name in merged}


def verify_onnx(
    onnx_path: str | Path,
    ckpt: CanonicalCheckpoint,
    *,
    device: str = "auto",
    batches: Sequence[int] | None = None,
    samples: int = DEFAULT_SAMPLES,
    atol: float | Mapping[str, float] | None = None,
    variant: str | None = None,
    mean_atol: float | Mapping[str, float] | None = None,
) -> VerifyReport:
    """Check metadata, then compare onnxruntime with PyTorch; raises on any failure.

    batches: None means (1, 4) for a dynamic-batch graph, its own size for a fixed one.
    atol: a float sets the coords tolerance (heatmap units); a mapping sets any output's.
    Defaults depend on the graph's precision (metadata; fp32 without it) and variant:
    converter.verdicts.tolerances.precision_tolerances.
    mean_atol: the same for the mean abs error, judged where set (int8 by default).
    variant: required when the graph has no cnp-convert metadata.
    """
    started = time.perf_counter()
    path = Path(onnx_path)
    if samples < 1:
        raise UsageError(f"samples must be at least 1, not {samples}")
    spec = ckpt.spec
    if variant is not None and get_variant(variant).name != spec.name:
        raise VariantMismatchError(
            f"--variant {get_variant(variant).name} but the checkpoint "
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
                f"{path}: has no cnp-convert metadata; pass --variant to verify it anyway"
            )
        warnings.append(
            f"{path} has no cnp-convert metadata: variant {spec.name} taken from --variant, "
            "weights provenance unchecked"
        )
    else:
        warnings.extend(_check_metadata(path, meta, ckpt, variant))

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
    fixed = facts.input_shape[0] if isinstance(facts.input_shape[0], int) else None
    batch_sizes = _parse_batches(batches, fixed)

    precision = meta.precision if meta is not None else "fp32"
    if precision not in PRECISIONS:
        raise OnnxModelError(f"{path}: metadata names an unknown precision {precision!r}")
    default_atol, default_mean_atol = precision_tolerances(precision, spec)
    tolerances = _tolerances(atol, default_atol, output_map)
    mean_tolerances = _tolerances(mean_atol, default_mean_atol, output_map)

    session, torch_device, note = _choose_devices(path, device)
    model = build_loaded_model(ckpt)
    images = normalize_images(seeded_images(samples, VERIFY_SEED, spec.input_hw), spec)
    results = run_parity(
        model,
        session,
        images,
        batch_sizes,
        tolerances,
        torch_device=torch_device,
        spec=spec,
        output_map=output_map,
        mean_atol=mean_tolerances,
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
        samples=samples,
        batches=batch_sizes,
        atol=tolerances,
        results=results,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
        precision=precision,
        mean_atol=mean_tolerances,
    )
    if not report.passed:
        failed = next(e for r in results for e in r.outputs if not e.passed)
        batch = next(r.batch for r in results if not r.passed)
        raise ParityFailedError(
            f"{path}: parity failed on {session.device} at batch {batch}: {failed.line()}", report
        )
    return report
