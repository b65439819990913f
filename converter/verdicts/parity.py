"""Verdicts on a candidate backend's outputs: pure numpy, no runtime involved.

fp32 graphs are judged against the numerical floor. The reference is the PyTorch model run in
float64 on the same inputs; the floor is how far PyTorch fp32 itself lands from that reference,
as the root mean square of its errors (stable from one set of inputs to the next, where their
maximum is not) and their maximum; the candidate (onnxruntime) passes when its own largest
distance from the reference is at most ``max(factor x rms, max_factor x max) + margin`` per
output (constants and how they were measured: converter.verdicts.tolerances). A checkpoint
whose fp32 arithmetic is noisy gets a limit as wide as its noise, and a tight one gets a tight
limit. An explicit atol replaces the limit.

A graph whose soft-argmax is literal (E[x] = sum(p * x), coords not divided by the summed mass)
passes the rounding of the softmax's sum over D*H*W cells into every coordinate, by an amount
set by the runtime's summation order, not PyTorch's: its coords get, per element, the bound of
that rounding (softmax_sum_allowance). The floor itself is measured with the sum's rounding
cancelled (core.model.MomentSoftArgmax): no checkpoint's limit rests on PyTorch's order.

Reduced precisions (fp16, int8) are judged by the task: how far the 3D pose moves, in camera
millimetres, between PyTorch fp32 and the graph on real-preprocessed crops (pose_change).

Millimetres for ``coords``: x and y are heatmap pixels of a crop whose 256 pixels span the
2000 mm 3D box (bbox_3d_shape), so 2000/W mm per pixel (nominal: the real crop's size varies per
frame); z is depth bins, 2000/D mm per bin, exact. Per joint, the worst 3D error over samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..core.variants import VariantSpec


def coords_mm_per_unit(spec: VariantSpec) -> tuple[float, float, float]:
    """Millimetres per coords unit along x, y, z (see the module docstring)."""
    box_x, box_y, box_z = (float(v) for v in spec.bbox_3d_shape_mm)
    height, width = spec.heatmap_hw
    return (box_x / width, box_y / height, box_z / spec.depth_dim)


UNIT_ROUNDOFF_FP32 = 2.0**-24


def softmax_sum_terms(probabilities: np.ndarray) -> np.ndarray:
    """(..., cells) float64 probabilities summing to 1 -> (..., 2): the mass of the cells below
    u, and the number of cells at or above it (what softmax_sum_allowance is made of)."""
    p = np.asarray(probabilities, dtype=np.float64)
    small = p < UNIT_ROUNDOFF_FP32
    return np.stack((np.where(small, p, 0.0).sum(axis=-1), (~small).sum(axis=-1)), axis=-1)


def softmax_sum_allowance(coords64: np.ndarray, terms: np.ndarray, lam: float) -> np.ndarray:
    """(N, J, 3): how far fp32 rounding in a literal soft-argmax's long sums can move coords.

    A sum of positive terms p (the softmax's normalizer; the expectation's, of p * x, alike)
    rounds each addition by at most min(u * s, p) for a running sum s <= 1. Cells below u can be
    dropped whole and all in one direction (a runtime summing in one accumulator does), so their
    mass counts in full; the other cells' errors are of either sign, lam * u * sqrt(count) of
    them. Each of the two sums moves a coordinate by its relative error times |c|: twice that in
    all. How far it stays above a sequential float32 sum's real error: docs/flow.md, "Parity
    verdicts" (benchmarks/verdicts.py sum-bound).
    """
    mass, count = (np.asarray(terms, dtype=np.float64)[..., k] for k in (0, 1))
    relative = mass + lam * UNIT_ROUNDOFF_FP32 * np.sqrt(count)
    return 2.0 * relative[..., None] * np.abs(np.asarray(coords64, dtype=np.float64))


@dataclass(frozen=True)
class Limit:
    """What an output's error is held to: max(factor x floor rms, max_factor x floor max) +
    margin (+ the normalizer bound with normalizer_lambda, coords only), or a given atol."""

    factor: float  # on the floor's rms
    margin: float
    atol: float | None = None  # given by the user: replaces the floor rule
    normalizer_lambda: float = 0.0
    max_factor: float = 0.0  # on the floor's max (0: the rms alone)

    def value(self, floor: float, floor_max: float = 0.0, allowance: float = 0.0) -> float:
        if self.atol is not None:
            return self.atol
        return max(self.factor * floor, self.max_factor * floor_max) + self.margin + allowance

    def describe(self) -> str:
        if self.atol is not None:
            return f"atol {self.atol:g} (given)"
        if self.max_factor:
            text = f"max({self.factor:g} x floor, {self.max_factor:g} x its max) + {self.margin:g}"
        else:
            text = f"{self.factor:g} x floor + {self.margin:g}"
        if self.normalizer_lambda:
            text += " + the softmax sums' rounding bound"
        return text


@dataclass(frozen=True)
class OutputParity:
    name: str
    shape: tuple[int, ...]
    passed: bool
    error: float  # the candidate's abs error against float64 at the element nearest its limit
    floor: float  # the rms of PyTorch fp32's abs errors against the same reference
    limit: float  # that element's limit
    rule: str  # Limit.describe()
    mean_error: float
    worst_index: tuple[int, ...]
    reference_at_worst: float
    candidate_at_worst: float
    joint_error_mm: tuple[float, ...] | None = None  # coords: per joint, worst 3D error in mm
    joint_floor_mm: tuple[float, ...] | None = None  # the same for PyTorch fp32
    joint_names: tuple[str, ...] | None = None
    note: str | None = None  # why no comparison could be made (shape, non-finite values)
    max_error: float | None = None  # the largest abs error anywhere (None: it is `error`)
    allowance: float = 0.0  # the normalizer bound in `limit` (0: none)
    floor_max: float | None = None  # PyTorch fp32's largest abs error (None: not compared)

    @property
    def worst_joint(self) -> tuple[str, float, float] | None:
        """(name, candidate mm, floor mm) of the joint with the largest candidate error."""
        if not self.joint_error_mm or not self.joint_names:
            return None
        j = int(np.argmax(self.joint_error_mm))
        floor = self.joint_floor_mm[j] if self.joint_floor_mm else float("nan")
        return self.joint_names[j], self.joint_error_mm[j], floor

    def to_dict(self) -> dict[str, object]:
        worst = self.worst_joint
        return {
            "name": self.name,
            "shape": list(self.shape),
            "passed": self.passed,
            "error": self.error,
            "floor": self.floor,
            "floor_max": self.floor_max,
            "limit": self.limit,
            "rule": self.rule,
            "mean_error": self.mean_error,
            "worst_index": list(self.worst_index),
            "reference_at_worst": self.reference_at_worst,
            "candidate_at_worst": self.candidate_at_worst,
            "joint_error_mm": list(self.joint_error_mm) if self.joint_error_mm else None,
            "joint_floor_mm": list(self.joint_floor_mm) if self.joint_floor_mm else None,
            "worst_joint": {"name": worst[0], "mm": worst[1], "floor_mm": worst[2]}
            if worst
            else None,
            "note": self.note,
            "max_error": self.error if self.max_error is None else self.max_error,
            "normalizer_allowance": self.allowance,
        }

    def floor_text(self) -> str:
        if self.floor_max is None:
            return f"{self.floor:.3g}"
        return f"rms {self.floor:.3g}, max {self.floor_max:.3g}"

    def line(self) -> str:
        verdict = "within limit" if self.passed else "OVER LIMIT"
        if self.note:
            return f"{self.name}: {verdict} ({self.note})"
        if self.max_error is None:
            text = (
                f"{self.name}: max abs {self.error:.3g} vs float64 (PyTorch fp32 floor "
                f"{self.floor_text()}; limit {self.limit:.3g} = {self.rule}) {verdict}, "
            )
        else:
            text = (
                f"{self.name}: {self.error:.3g} vs float64 where nearest its limit (PyTorch "
                f"fp32 floor {self.floor_text()}; limit {self.limit:.3g} = {self.rule}, sum bound "
                f"{self.allowance:.3g} there) {verdict}, max abs {self.max_error:.3g}, "
            )
        text += (
            f"mean {self.mean_error:.3g}, worst at {list(self.worst_index)} "
            f"({self.candidate_at_worst:.6g} vs {self.reference_at_worst:.6g})"
        )
        worst = self.worst_joint
        if worst is not None:
            text += f"; worst joint {worst[0]} {worst[1]:.3g} mm (floor {worst[2]:.3g} mm)"
        return text


@dataclass(frozen=True)
class ParityReport:
    outputs: tuple[OutputParity, ...]
    batch: int | None = None  # batch size the candidate ran at, when the caller knows it
    samples: int | None = None

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    def output(self, name: str) -> OutputParity:
        for entry in self.outputs:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        return {
            "batch": self.batch,
            "samples": self.samples,
            "passed": self.passed,
            "outputs": [o.to_dict() for o in self.outputs],
        }


def _failed(name: str, shape: tuple[int, ...], note: str) -> OutputParity:
    nan = float("nan")
    return OutputParity(name, shape, False, nan, nan, nan, "", nan, (), nan, nan, note=note)


def _joint_mm(diff: np.ndarray, mm: tuple[float, float, float]) -> tuple[float, ...]:
    """(N, J, 3) abs differences -> per joint, the worst 3D distance in millimetres."""
    distances = np.sqrt(((diff * np.asarray(mm)) ** 2).sum(axis=-1))
    return tuple(float(v) for v in distances.max(axis=0))


def judge_output(
    name: str,
    reference64: np.ndarray,
    torch32: np.ndarray,
    candidate: np.ndarray,
    limit: Limit,
    spec: VariantSpec | None = None,
    sum_terms: np.ndarray | None = None,
) -> OutputParity:
    """One output: the candidate's and PyTorch fp32's errors against float64, and the verdict.

    sum_terms: (N, J, 2) softmax_sum_terms of the float64 reference's probability volumes; with
    the limit's normalizer_lambda, coords get softmax_sum_allowance per element (judged element
    by element; the report names the element nearest its limit).
    """
    ref = np.asarray(reference64, dtype=np.float64)
    shape = tuple(int(s) for s in ref.shape)
    arrays = {"PyTorch fp32": np.asarray(torch32, dtype=np.float64)}
    arrays["candidate"] = np.asarray(candidate, dtype=np.float64)
    for side, values in arrays.items():
        if values.shape != ref.shape:
            return _failed(
                name, shape, f"{side} shape {list(values.shape)}, expected {list(shape)}"
            )
    if ref.size == 0:
        return _failed(name, shape, "empty output")
    for side, values in (("reference", ref), *arrays.items()):
        count = int((~np.isfinite(values)).sum())
        if count:  # NaN compares as "not greater than" anything: never let it pass
            return _failed(name, shape, f"{count} non-finite value(s) in {side}")
    diff = np.abs(arrays["candidate"] - ref)
    floor_diff = np.abs(arrays["PyTorch fp32"] - ref)
    floor, floor_max = float(np.sqrt(np.mean(floor_diff**2))), float(floor_diff.max())
    allowance = None
    if limit.atol is None and limit.normalizer_lambda and sum_terms is not None:
        if ref.ndim != 3 or np.shape(sum_terms) != (*ref.shape[:2], 2):
            raise ValueError(f"sum terms {np.shape(sum_terms)} do not fit {name} {list(shape)}")
        allowance = softmax_sum_allowance(ref, sum_terms, limit.normalizer_lambda)
    if allowance is None:
        worst_flat = int(np.argmax(diff))
        bound, extra = limit.value(floor, floor_max), 0.0
    else:
        bounds = limit.value(floor, floor_max) + allowance
        worst_flat = int(np.argmax(diff - bounds))  # the element nearest (or most past) its limit
        bound, extra = float(bounds.flat[worst_flat]), float(allowance.flat[worst_flat])
    worst = tuple(int(i) for i in np.unravel_index(worst_flat, diff.shape))
    error = float(diff.flat[worst_flat])
    joint_error = joint_floor = names = None
    if name == "coords" and spec is not None and ref.ndim == 3 and ref.shape[-1] == 3:
        mm = coords_mm_per_unit(spec)
        joint_error, joint_floor = _joint_mm(diff, mm), _joint_mm(floor_diff, mm)
        names = spec.joint_names[: ref.shape[1]]
    return OutputParity(
        name=name,
        shape=shape,
        passed=error <= bound,
        error=error,
        floor=floor,
        floor_max=floor_max,
        limit=bound,
        rule=limit.describe(),
        mean_error=float(diff.mean()),
        worst_index=worst,
        reference_at_worst=float(ref[worst]),
        candidate_at_worst=float(arrays["candidate"][worst]),
        joint_error_mm=joint_error,
        joint_floor_mm=joint_floor,
        joint_names=names,
        max_error=None if allowance is None else float(diff.max()),
        allowance=extra,
    )


def judge_outputs(
    reference64: Mapping[str, np.ndarray],
    torch32: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    limits: Mapping[str, Limit],
    *,
    spec: VariantSpec | None = None,
    batch: int | None = None,
    sum_terms: np.ndarray | None = None,
) -> ParityReport:
    """Every reference output judged; limits must name each (a silent default would hide one).
    sum_terms: the reference's softmax_sum_terms, for coords (judge_output)."""
    missing = [name for name in reference64 if name not in limits]
    if missing:
        raise ValueError(f"no limit given for output(s) {missing}")
    entries = []
    for name, ref in reference64.items():
        ref = np.asarray(ref)
        if name not in candidate or name not in torch32:
            entries.append(_failed(name, tuple(ref.shape), "missing in candidate"))
            continue
        entries.append(
            judge_output(
                name, ref, torch32[name], candidate[name], limits[name], spec,
                sum_terms if name == "coords" else None,
            )
        )  # fmt: skip
    samples = int(np.asarray(next(iter(reference64.values()))).shape[0]) if reference64 else None
    return ParityReport(outputs=tuple(entries), batch=batch, samples=samples)


# ---------------------------------------------------------------------------------------------
# Reduced precision: the pose change in millimetres


@dataclass(frozen=True)
class PoseBudget:
    mean_mm: float
    p95_mm: float
    worst_mm: float


@dataclass(frozen=True)
class PoseChange:
    """How far the graph moves the 3D pose from PyTorch fp32, per joint, in camera mm."""

    precision: str
    frames: int
    source: str
    mean_mm: float
    p95_mm: float
    worst_mm: float
    worst_joint: str
    budget: PoseBudget
    batch: int | None = None

    @property
    def passed(self) -> bool:
        return (
            np.isfinite([self.mean_mm, self.p95_mm, self.worst_mm]).all()
            and self.mean_mm <= self.budget.mean_mm
            and self.p95_mm <= self.budget.p95_mm
            and self.worst_mm <= self.budget.worst_mm
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "precision": self.precision,
            "frames": self.frames,
            "source": self.source,
            "batch": self.batch,
            "mean_mm": self.mean_mm,
            "p95_mm": self.p95_mm,
            "worst_mm": self.worst_mm,
            "worst_joint": self.worst_joint,
            "budget": {
                "mean_mm": self.budget.mean_mm,
                "p95_mm": self.budget.p95_mm,
                "worst_mm": self.budget.worst_mm,
            },
            "passed": bool(self.passed),
        }

    def line(self) -> str:
        verdict = "within budget" if self.passed else "OVER BUDGET"
        b = self.budget
        return (
            f"{self.precision} pose change on {self.frames} crops ({self.source}): mean "
            f"{self.mean_mm:.2f} mm, p95 {self.p95_mm:.2f} mm, worst {self.worst_mm:.2f} mm "
            f"({self.worst_joint}); budget mean {b.mean_mm:g} / p95 {b.p95_mm:g} / worst "
            f"{b.worst_mm:g} mm: {verdict}"
        )


def pose_change(
    reference_mm: np.ndarray,
    candidate_mm: np.ndarray,
    joints: tuple[int, ...],
    joint_names: tuple[str, ...],
    *,
    precision: str,
    source: str,
    budget: PoseBudget,
    batch: int | None = None,
) -> PoseChange:
    """(N, J, 3) camera-mm poses of both backends -> per-joint 3D distance statistics."""
    ref = np.asarray(reference_mm, dtype=np.float64)[:, joints]
    cand = np.asarray(candidate_mm, dtype=np.float64)[:, joints]
    distances = np.linalg.norm(cand - ref, axis=-1)  # (N, len(joints))
    if not np.isfinite(distances).all() or distances.size == 0:
        nan = float("nan")
        return PoseChange(precision, ref.shape[0], source, nan, nan, nan, "-", budget, batch)
    worst = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return PoseChange(
        precision=precision,
        frames=int(ref.shape[0]),
        source=source,
        mean_mm=float(distances.mean()),
        p95_mm=float(np.percentile(distances, 95)),
        worst_mm=float(distances[worst]),
        worst_joint=joint_names[joints[int(worst[1])]],
        budget=budget,
        batch=batch,
    )
