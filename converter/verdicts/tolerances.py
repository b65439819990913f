"""What each precision is held to, and how those numbers were measured.

fp32: the floor rule. limit = FLOOR_FACTOR x floor + FLOOR_MARGIN[output], where the floor is the
max abs error of PyTorch fp32 against PyTorch float64 on the same inputs (verdicts/parity.py).
Measured by benchmarks/verdicts.py: see the README's "Parity verdicts" table.

fp16 / int8: pose-change budgets in camera millimetres (mean, 95th percentile, worst per-joint
3D distance between PyTorch fp32 and the graph on real-preprocessed crops), measured by
benchmarks/verdicts.py on the trained stand-in and the fabricated releases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from converter.core.errors import UsageError
from converter.verdicts.parity import Limit, PoseBudget

PRECISIONS = ("fp32", "fp16", "int8")

FLOOR_FACTOR = 4.0
FLOOR_MARGIN: dict[str, float] = {"coords": 2e-4, "heatmaps": 2e-4}

# Measured (benchmarks/verdicts.py budgets, 93 synthetic crops, 2026-11-30), per-joint 3D
# distance to PyTorch fp32, mean / p95 / worst in mm (random = fabricate's seed-0 weights):
#   fp16 (onnxruntime): trained stand-in 0.04 / 0.09 / 0.2; random XS 0.45 / 1.16 / 3.8; L 0.74 /
#   1.99 / 5.0
#   int8 (onnxruntime): stand-in 2.64 / 6.18 / 20.3; random XS 39.9 / 98.5 / 335, L 52.2 / 133 / 396
#   int8 (OpenVINO): stand-in 2.50 / 6.18 / 15.5
#   bf16 (an fp32 graph that OpenVINO 2026.4 runs in bf16 on this AMX CPU): stand-in 0.52 / 1.34 /
#   4.4; random XS 5.42 / 13.2 / 33.4, L 8.39 / 21.3 / 63.5
# fp16's budget sits above every fp16 graph measured; int8's at ~4x the trained stand-in and
# bf16's at ~5x, both under what they do to random weights (bf16 keeps 8 significant bits to
# fp16's 11; random weights spread each heatmap's mass, so every rounding moves the expectation).
POSE_BUDGETS: dict[str, PoseBudget] = {
    "fp16": PoseBudget(mean_mm=2.0, p95_mm=6.0, worst_mm=25.0),
    "int8": PoseBudget(mean_mm=10.0, p95_mm=25.0, worst_mm=100.0),
    "bf16": PoseBudget(mean_mm=2.5, p95_mm=7.0, worst_mm=25.0),
}

# Default `eval --max-delta-mm` between fp32 PyTorch and an ONNX graph of each precision: fp32
# differs by ~0.0003 mm; fp16 changed MPJPE by 0.045 mm and int8 by up to 4.1 mm on the synthetic
# set with seeded weights (benchmarks/bench.py), so each limit sits above what was measured.
# bf16 (OpenVINO): the trained stand-in's MPJPE moved by 0.004 mm (benchmarks/roofline.py); the
# limit is the bf16 pose budget's mean, which bounds the MPJPE change (triangle inequality).
EVAL_MAX_DELTA_MM: dict[str, float] = {
    "fp32": 0.1,
    "fp16": 0.5,
    "int8": 10.0,
    "bf16": POSE_BUDGETS["bf16"].mean_mm,
}


# Coarsest last: a graph is judged by the coarser of what it stores and what the runtime computes.
_JUDGED_ORDER = ("fp32", "fp16", "bf16", "int8")
_EXECUTION_NAMES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}


def judged_precision(graph_precision: str, execution_precision: str | None = None) -> str:
    """The precision a run is judged as: fp32 graph executed in bf16 (OpenVINO on AMX) -> bf16.

    execution_precision: what the runtime reports it computes in (f32, f16, bf16), or None when
    it runs the graph's own types (onnxruntime).
    """
    ranks = [_JUDGED_ORDER.index(graph_precision)]
    if execution_precision is not None:
        if execution_precision not in _EXECUTION_NAMES:
            raise ValueError(f"unknown execution precision {execution_precision!r}")
        ranks.append(_JUDGED_ORDER.index(_EXECUTION_NAMES[execution_precision]))
    return _JUDGED_ORDER[max(ranks)]


def check_precision(precision: str) -> str:
    name = precision.strip().lower()
    if name not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return name


def check_atol(value: float, option: str = "--atol") -> float:
    """A user's tolerance: positive and finite, or a usage error (exit 2) before any work."""
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise UsageError(f"{option} must be a positive finite number, not {value!r}")
    return number


def fp32_limits(
    outputs: tuple[str, ...] | list[str], atol: float | Mapping[str, float] | None = None
) -> dict[str, Limit]:
    """The floor rule per output; a float atol overrides coords, a mapping any output."""
    given: dict[str, float] = {}
    if isinstance(atol, Mapping):
        given = {k: check_atol(v) for k, v in atol.items()}
    elif atol is not None:
        given = {"coords": check_atol(atol)}
    return {name: Limit(FLOOR_FACTOR, FLOOR_MARGIN[name], given.get(name)) for name in outputs}
