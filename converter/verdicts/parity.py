"""Compare a reference backend's outputs with a candidate's: pure numpy, no runtime involved.

Pass/fail uses an absolute tolerance per output only. Relative error is reported for reading but
never judged: coordinates near zero (a joint at the heatmap's edge, depth bin 0) make it
meaningless. For ``coords`` the worst error is also converted to millimetres so a reader can
judge it against MPJPE figures (~50 mm):

- x, y: heatmap pixels through a nominal 2000 mm box spanning the heatmap width, i.e.
  2000/W mm per pixel (the 256-pixel patch of a person is about the 3D box's 2 m; the real
  Human3.6M crop varies per frame, so this is an order of magnitude, not an exact figure);
- z: depth bins through bbox_3d_shape (2000 mm over D bins), i.e. 2000/D mm per bin, exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from converter.core.variants import VariantSpec

# Denominator floor for the (informational) relative error.
_REL_FLOOR = 1e-6


def coords_mm_per_unit(spec: VariantSpec) -> tuple[float, float, float]:
    """Millimetres per coords unit along x, y, z (see the module docstring)."""
    box_x, box_y, box_z = (float(v) for v in spec.bbox_3d_shape_mm)
    height, width = spec.heatmap_hw
    return (box_x / width, box_y / height, box_z / spec.depth_dim)


@dataclass(frozen=True)
class OutputParity:
    name: str
    shape: tuple[int, ...]
    atol: float
    passed: bool
    max_abs: float
    mean_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    reference_at_worst: float
    candidate_at_worst: float
    worst_mm: float | None = None  # coords only: worst per-axis error in millimetres
    worst_mm_xyz: tuple[float, float, float] | None = None  # coords only: worst per axis, mm
    note: str | None = None  # why a comparison could not be made (shape, non-finite values)
    mean_atol: float | None = None  # also judged on the mean abs error (cheaper precisions)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "atol": self.atol,
            "passed": self.passed,
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "max_rel": self.max_rel,
            "worst_index": list(self.worst_index),
            "reference_at_worst": self.reference_at_worst,
            "candidate_at_worst": self.candidate_at_worst,
            "worst_mm": self.worst_mm,
            "worst_mm_xyz": list(self.worst_mm_xyz) if self.worst_mm_xyz else None,
            "note": self.note,
            "mean_atol": self.mean_atol,
        }

    def line(self) -> str:
        """One human-readable line."""
        verdict = "ok" if self.passed else "FAIL"
        if self.note:
            return f"{self.name}: {verdict} ({self.note})"
        mean_limit = f" (limit {self.mean_atol:g})" if self.mean_atol is not None else ""
        text = (
            f"{self.name}: max abs {self.max_abs:.3g} (atol {self.atol:g}) {verdict}, "
            f"mean abs {self.mean_abs:.3g}{mean_limit}, max rel {self.max_rel:.3g}, "
            f"worst at {list(self.worst_index)} ({self.reference_at_worst:.6g} vs "
            f"{self.candidate_at_worst:.6g})"
        )
        if self.worst_mm is not None:
            text += f", worst {self.worst_mm:.3g} mm"
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


def _failed(name: str, shape: tuple[int, ...], atol: float, note: str) -> OutputParity:
    nan = float("nan")
    return OutputParity(name, shape, atol, False, nan, nan, nan, (), nan, nan, note=note)


def compare_output(
    name: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    atol: float,
    mm_per_unit: tuple[float, float, float] | None = None,
    mean_atol: float | None = None,
) -> OutputParity:
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        return _failed(
            name, tuple(ref.shape), atol, f"shape {list(cand.shape)}, expected {list(ref.shape)}"
        )
    if ref.size == 0:
        return _failed(name, tuple(ref.shape), atol, "empty output")
    for side, values in (("reference", ref), ("candidate", cand)):
        count = int((~np.isfinite(values)).sum())
        if count:  # NaN compares as "not greater than atol": never let it pass
            return _failed(name, tuple(ref.shape), atol, f"{count} non-finite value(s) in {side}")
    diff = np.abs(cand - ref)
    worst_flat = int(np.argmax(diff))
    worst = tuple(int(i) for i in np.unravel_index(worst_flat, diff.shape))
    max_abs = float(diff.flat[worst_flat])
    mean_abs = float(diff.mean())
    rel = diff / np.maximum(np.abs(ref), _REL_FLOOR)
    worst_mm = worst_mm_xyz = None
    if mm_per_unit is not None and ref.shape[-1] == 3:
        per_axis = diff.reshape(-1, 3).max(axis=0) * np.asarray(mm_per_unit)
        worst_mm_xyz = (float(per_axis[0]), float(per_axis[1]), float(per_axis[2]))
        worst_mm = max(worst_mm_xyz)
    return OutputParity(
        name=name,
        shape=tuple(int(s) for s in ref.shape),
        atol=float(atol),
        passed=max_abs <= atol and (mean_atol is None or mean_abs <= mean_atol),
        max_abs=max_abs,
        mean_abs=mean_abs,
        max_rel=float(rel.max()),
        worst_index=worst,
        reference_at_worst=float(ref[worst]),
        candidate_at_worst=float(cand[worst]),
        worst_mm=worst_mm,
        worst_mm_xyz=worst_mm_xyz,
        mean_atol=mean_atol,
    )


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    atol: Mapping[str, float],
    *,
    coords_mm: tuple[float, float, float] | None = None,
    batch: int | None = None,
    mean_atol: Mapping[str, float] | None = None,
) -> ParityReport:
    """Every reference output against the candidate's output of the same name.

    atol must name every reference output (a silent default would hide a forgotten output).
    coords_mm (from coords_mm_per_unit) adds the millimetre figures to the ``coords`` entry.
    mean_atol: outputs also judged on their mean abs error (others: max abs only).
    """
    missing_atol = [name for name in reference if name not in atol]
    if missing_atol:
        raise ValueError(f"no tolerance given for output(s) {missing_atol}")
    entries = []
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if name not in candidate:
            entries.append(_failed(name, tuple(ref.shape), atol[name], "missing in candidate"))
            continue
        scale = coords_mm if name == "coords" else None
        mean_limit = (mean_atol or {}).get(name)
        entries.append(compare_output(name, ref, candidate[name], atol[name], scale, mean_limit))
    samples = int(np.asarray(next(iter(reference.values()))).shape[0]) if reference else None
    return ParityReport(outputs=tuple(entries), batch=batch, samples=samples)


# fp32 tolerances per output. coords are in heatmap units: 2e-3 is ~0.1 mm in x/y for a 64-wide
# heatmap and ~0.06 mm in z for 64 bins (measured worst on ORT CPU: see README).
DEFAULT_ATOL: dict[str, float] = {"coords": 2e-3, "heatmaps": 1e-2}
