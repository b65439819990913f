"""Edges of the metric reports: a comparison record whose backends and values do not pair up."""

from __future__ import annotations

import pytest

from converter.h36m.metrics import BackendComparison


def test_a_comparison_with_more_backends_than_values_is_refused_on_report() -> None:
    comparison = BackendComparison(
        backends=("onnx", "torch", "extra"),  # type: ignore[arg-type]
        metric="MPJPE",
        values_mm=(1.0, 2.0),
        difference_mm=-1.0,
        max_distance_mm=0.5,
        mean_distance_mm=0.25,
        worst_image_id=3,
        worst_joint="Head",
    )
    with pytest.raises(ValueError, match="zip"):
        comparison.to_dict()
