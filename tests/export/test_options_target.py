"""ExportOptions.target: the opset each target's default export takes (docs/compatibility.md)."""

from __future__ import annotations

import pytest

from converter.core.errors import OptionError
from converter.export.options import ExportOptions


@pytest.mark.parametrize(
    ("target", "opset", "exporter"),
    [
        ("onnxruntime", 18, "torchscript"),
        ("openvino", 18, "torchscript"),
        ("opencv", 18, "torchscript"),
        # onnx2torch 1.5 has no Resize 18; onnx2tf 1.29 converts opset 18 wrong and 11 right
        ("tflite", 11, "torchscript"),
        ("onnx2torch", 11, "torchscript"),
    ],
)
def test_each_target_takes_the_opset_measured_to_work(target, opset, exporter) -> None:
    options = ExportOptions(target=target)
    assert (options.target, options.opset, options.exporter) == (target, opset, exporter)


def test_a_given_opset_wins_over_the_target() -> None:
    assert ExportOptions(target="tflite", opset=13).opset == 13
    assert ExportOptions(opset=20).opset == 20
    assert ExportOptions(target=" TFLite ").target == "tflite"


def test_an_unknown_target_is_named() -> None:
    with pytest.raises(OptionError, match=r"^target must be one of onnxruntime, .*'coreml'"):
        ExportOptions(target="coreml")
