"""The tolerances each precision is held to, and the precision names themselves."""

from __future__ import annotations

from converter.core.errors import UsageError
from converter.core.variants import VariantSpec
from converter.verdicts.parity import DEFAULT_ATOL

PRECISIONS = ("fp32", "fp16", "int8")

# Default verify/export tolerances per precision, against the PyTorch fp32 model: max abs per
# output, coords in heatmap units, heatmaps in logits. Measured by benchmarks/precision.py (figures
# in the README): fp16 worst 0.14 on onnxruntime CPU and 0.27 with fp16 arithmetic (PyTorch half,
# as a GPU runs it); int8 worst 16.3 (M, 64 bins). The seeded weights' few-bin heatmaps magnify
# these.
# fp16/int8 coords limits are for a 32-bin heatmap (XS, S) and scale with the bins (M, L: x2):
# the errors do, in heatmap units (they are alike in millimetres).
# int8's worst joint can land almost anywhere, so int8 is also judged on the mean abs error:
# measured worst 1.8 (per 32 bins; logits 0.62), while graphs of other weights differ by
# 5.4-7.0 (logits 4.8) on average: the mean limit sits between.
TOLERANCE_BINS = 32
PRECISION_ATOL: dict[str, dict[str, float]] = {
    "fp32": dict(DEFAULT_ATOL),
    "fp16": {"coords": 0.5, "heatmaps": 0.25},
    "int8": {"coords": 16.0, "heatmaps": 10.0},
}
PRECISION_MEAN_ATOL: dict[str, dict[str, float]] = {
    "fp32": {},
    "fp16": {},
    "int8": {"coords": 3.0, "heatmaps": 1.5},
}

# Default `eval --max-delta-mm` between fp32 PyTorch and an ONNX graph of each precision: fp32
# differs by ~0.0003 mm; fp16 changed MPJPE by 0.045 mm and int8 by up to 4.1 mm on the synthetic
# set with seeded weights (benchmarks/bench.py), so each limit sits above what was measured.
EVAL_MAX_DELTA_MM: dict[str, float] = {"fp32": 0.1, "fp16": 0.5, "int8": 10.0}


def check_precision(precision: str) -> str:
    name = precision.strip().lower()
    if name not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return name


def precision_tolerances(
    precision: str, spec: VariantSpec
) -> tuple[dict[str, float], dict[str, float]]:
    """(max abs, mean abs) default tolerances per output for a precision and variant."""
    name = check_precision(precision)
    scale = 1.0 if name == "fp32" else spec.heatmap_hw[1] / TOLERANCE_BINS

    def scaled(limits: dict[str, float]) -> dict[str, float]:
        return {k: v * scale if k == "coords" else v for k, v in limits.items()}

    return scaled(PRECISION_ATOL[name]), scaled(PRECISION_MEAN_ATOL[name])
