"""Each rule of the graph contract fails on a graph that breaks it (facts edited one at a time)."""

from __future__ import annotations

import dataclasses

import pytest

from converter.core.variants import get_variant
from converter.export.exporter import contract_problems

XS = get_variant("XS")


@pytest.fixture(scope="module")
def facts(onnx_cache):
    return onnx_cache.exported(onnx_cache.release_checkpoint("XS"))[1].graph


def _problems(facts, **changes) -> list[str]:
    return contract_problems(dataclasses.replace(facts, **changes), XS, ("coords",), "dynamic", 18)


def test_the_real_graph_keeps_the_contract(facts) -> None:
    assert _problems(facts) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"has_range": True}, "Range op"),
        ({"resize_modes": ("linear/align_corners", "linear/half_pixel")}, "align_corners"),
        ({"resize_modes": ("nearest/align_corners",) * 2}, "align_corners"),
        ({"resize_count": 3}, "3 Resize nodes, XS has 2"),
        ({"final_conv_channels": 1152}, "final conv has 1152 channels"),
        ({"stem_channels": 48}, "stem conv has 48 channels"),
        ({"final_conv_hw": (64, 64)}, "heatmap is 64x64"),
        ({"opset": 17}, "opset is 17"),
        ({"precision": "int8"}, "computes in int8"),
        ({"input_shape": (1, 3, 256, 256)}, "batch axis"),
        ({"input_names": ("input",)}, "inputs are"),
    ],
)
def test_each_rule_fails_when_broken(facts, changes: dict, expected: str) -> None:
    problems = _problems(facts, **changes)
    assert any(expected in p for p in problems), problems
