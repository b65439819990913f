"""What each precision is held to, and how those numbers were measured.

fp32: the floor rule. limit = max(FLOOR_FACTOR x rms, FLOOR_MAX_FACTOR x max) +
FLOOR_MARGIN[output], over the abs errors of PyTorch fp32 against PyTorch float64 on the same
inputs (verdicts/parity.py); coords add, per element, NORMALIZER_LAMBDA x the softmax sum's
rounding bound.
Measured by benchmarks/verdicts.py: see docs/flow.md, "Parity verdicts".

fp16 / int8 / bf16: pose-change budgets in camera millimetres (mean, 95th percentile, worst
per-joint 3D distance between PyTorch fp32 and the graph), one for real photos of people and one
for drawn figures. Measured on the released XS (converter.checkpoints.released) by
benchmarks/precision_sweep.py; the figures are in docs/precision_and_speed.md ("Reduced precision
on the released XS").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..core.choices import PRECISIONS
from ..core.errors import OptionError
from .parity import Limit, PoseBudget

# PyTorch's own largest error ran 4-11x its rms (XS, L; docs/flow.md, "Parity verdicts"): 40 x
# the rms keeps the old 4 x the max, and the rms moves little with the inputs' seed. 2 x the
# max keeps room where a checkpoint's noise sits in a few elements (the rms cannot see them).
FLOOR_FACTOR = 40.0
FLOOR_MAX_FACTOR = 2.0
FLOOR_MARGIN: dict[str, float] = {"coords": 2e-4, "heatmaps": 2e-4}
# lambda of the softmax sums' bound on a literal soft-argmax's coords (how many u sqrt(cells)
# the cells above u may round; parity.softmax_sum_allowance; docs/flow.md, "Parity verdicts").
NORMALIZER_LAMBDA: dict[str, float] = {"coords": 3.0, "heatmaps": 0.0}

# Real photos (the shipped crops, mirrored, scaled, rotated; or a Human3.6M tree's frames): what a
# deployment must keep. fp16 and the int8 recipe (precision.float_kept_nodes) sit well inside on
# the released XS; quantizing every layer, or bf16 everywhere, falls outside (see the docs).
POSE_BUDGETS: dict[str, PoseBudget] = {
    "fp16": PoseBudget(mean_mm=2.0, p95_mm=6.0, worst_mm=25.0),
    "int8": PoseBudget(mean_mm=10.0, p95_mm=25.0, worst_mm=100.0),
    "bf16": PoseBudget(mean_mm=2.5, p95_mm=7.0, worst_mm=25.0),
}
# Drawn figures: a network trained on Human3.6M photos is unsure of them (spread heatmaps), so
# every rounding moves its answer more; on the released XS the int8 recipe moves them ~4x what it
# does to photos. These budgets still refuse the graphs that fail on photos (every layer int8).
DRAWN_POSE_BUDGETS: dict[str, PoseBudget] = {
    "fp16": PoseBudget(mean_mm=2.0, p95_mm=6.0, worst_mm=25.0),
    "int8": PoseBudget(mean_mm=50.0, p95_mm=140.0, worst_mm=450.0),
    "bf16": PoseBudget(mean_mm=15.0, p95_mm=45.0, worst_mm=150.0),
}


def pose_budget(precision: str, drawn: bool = False) -> PoseBudget:
    return (DRAWN_POSE_BUDGETS if drawn else POSE_BUDGETS)[precision]


# Default `eval --max-delta-mm` between fp32 PyTorch and an ONNX graph of each precision, each
# above the MPJPE changes measured by benchmarks/bench.py and benchmarks/roofline.py (figures in
# docs/precision_and_speed.md); bf16's is its pose budget's mean, which bounds the MPJPE change
# (triangle inequality).
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
        raise OptionError("precision", f"must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return name


def check_atol(value: float, option: str = "atol") -> float:
    """A user's tolerance: positive and finite, or a usage error (exit 2) before any work."""
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise OptionError(option, f"must be a positive finite number, not {value!r}")
    return number


def fp32_limits(
    outputs: tuple[str, ...] | list[str],
    atol: float | Mapping[str, float] | None = None,
    *,
    divided_by_mass: bool = False,
) -> dict[str, Limit]:
    """The floor rule per output; a float atol overrides coords, a mapping any output.
    divided_by_mass: the graph's coords are divided by the summed mass (the softmax sum's
    rounding cancels: no bound for it); read from the graph, never from its metadata."""
    given: dict[str, float] = {}
    if isinstance(atol, Mapping):
        given = {k: check_atol(v) for k, v in atol.items()}
    elif atol is not None:
        given = {"coords": check_atol(atol)}
    return {
        name: Limit(
            FLOOR_FACTOR,
            FLOOR_MARGIN[name],
            given.get(name),
            0.0 if divided_by_mass else NORMALIZER_LAMBDA[name],
            FLOOR_MAX_FACTOR,
        )
        for name in outputs
    }
