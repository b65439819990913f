"""graph_precision reads what a graph computes in, from its ops and initializers."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converter.graphs.facts import graph_precision


def _graph(nodes, initializers=()) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_plain_float_graph_is_fp32() -> None:
    w = numpy_helper.from_array(np.ones(1, np.float32), "w")
    assert graph_precision(_graph([helper.make_node("Add", ["x", "w"], ["y"])], [w])) == "fp32"


def test_half_initializer_or_cast_is_fp16() -> None:
    w = numpy_helper.from_array(np.ones(1, np.float16), "w")
    nodes = [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "wf"], ["y"])]  # fmt: skip
    assert graph_precision(_graph(nodes, [w])) == "fp16"
    cast = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
            helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]  # fmt: skip
    assert graph_precision(_graph(cast)) == "fp16"


def test_quantization_ops_or_int8_weights_are_int8() -> None:
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "z")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]  # fmt: skip
    assert graph_precision(_graph(nodes, [scale, zero])) == "int8"
    w = numpy_helper.from_array(np.ones(1, np.int8), "w")
    nodes = [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "wf"], ["y"])]  # fmt: skip
    assert graph_precision(_graph(nodes, [w])) == "int8"


def test_constant_nodes_count_like_initializers() -> None:
    for dtype, expected in ((np.float16, "fp16"), (np.int8, "int8"), (np.float32, "fp32")):
        value = numpy_helper.from_array(np.ones(1, dtype))
        nodes = [helper.make_node("Constant", [], ["w"], value=value),
                 helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
                 helper.make_node("Add", ["x", "wf"], ["y"])]  # fmt: skip
        assert graph_precision(_graph(nodes)) == expected


def test_casts_to_other_types_are_not_half() -> None:
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64),
             helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)]  # fmt: skip
    assert graph_precision(_graph(nodes)) == "fp32"
