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


def _pose_like_graph(resize_mode: str = "linear", with_range: bool = False) -> onnx.ModelProto:
    """image (batch, 3, 8, 8) -> stem Conv 40 -> Resize x2 -> final Conv 576 -> coords."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])
    coords = helper.make_tensor_value_info("coords", TensorProto.FLOAT, ["batch", 576, 16, 16])
    weights = [
        numpy_helper.from_array(np.zeros((40, 3, 1, 1), np.float32), "stem.w"),
        numpy_helper.from_array(np.zeros((576, 40, 1, 1), np.float32), "final.w"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "stem.w"], ["a"]),
        helper.make_node(
            "Resize",
            ["a", "", "scales"],
            ["b"],
            mode=resize_mode,
            coordinate_transformation_mode="align_corners",
        ),
        helper.make_node("Conv", ["b", "final.w"], ["coords"]),
    ]
    if with_range:
        nodes.append(helper.make_node("Range", ["s", "e", "d"], ["r"]))
    graph = helper.make_graph(nodes, "pose", [image], [coords], initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return onnx.shape_inference.infer_shapes(model)


def test_graph_facts_read_off_a_small_graph() -> None:
    from converter.graphs.facts import format_shape, graph_facts

    facts = graph_facts(_pose_like_graph())
    assert facts.opset == 18 and facts.node_count == 3
    assert facts.op_types == {"Conv": 2, "Resize": 1}
    assert facts.resize_count == 1 and facts.resize_modes == ("linear/align_corners",)
    assert facts.resize_align_corners and not facts.has_range
    assert facts.input_names == ("image",) and facts.input_shape == ("batch", 3, 8, 8)
    assert facts.input_elem_type == TensorProto.FLOAT and facts.dynamic_batch
    assert facts.output_shapes == {"coords": ("batch", 576, 16, 16)}
    assert facts.stem_channels == 40 and facts.final_conv_channels == 576
    assert facts.final_conv_hw == (16, 16) and facts.precision == "fp32"
    assert format_shape(facts.input_shape) == "batchx3x8x8" and format_shape(None) == "unknown"
    assert format_shape((None, 3)) == "?x3"
    as_dict = facts.to_dict()
    assert as_dict["input_shape"] == ["batch", 3, 8, 8] and as_dict["nodes"] == 3
    assert as_dict["final_conv_hw"] == [16, 16] and as_dict["resize_count"] == 1
    assert as_dict["op_types"] == {"Conv": 2, "Resize": 1} and as_dict["has_range"] is False
    assert as_dict["stem_channels"] == 40 and as_dict["final_conv_channels"] == 576


def test_graph_facts_see_range_and_other_resize_modes() -> None:
    from converter.graphs.facts import graph_facts

    facts = graph_facts(_pose_like_graph("nearest", with_range=True))
    assert facts.has_range and facts.resize_modes == ("nearest/align_corners",)
    assert not facts.resize_align_corners


def test_variant_disagreements_name_each_mismatch() -> None:
    import dataclasses

    from converter.core.variants import get_variant
    from converter.graphs.facts import graph_facts, variant_disagreements

    xs = get_variant("XS")
    facts = dataclasses.replace(graph_facts(_pose_like_graph()), resize_count=2,
                                final_conv_hw=(32, 32))  # fmt: skip
    assert variant_disagreements(facts, xs) == []
    wrong = variant_disagreements(facts, get_variant("L"))
    assert wrong == [
        "stem conv has 40 channels, L has 48",
        "final conv has 576 channels, L has 1152 = 18 x depth_dim 64",
        "2 Resize nodes, L has 3 upsampling blocks",
        "heatmap is 32x32, L has 64x64",
    ]
    unknown = dataclasses.replace(facts, final_conv_hw=("h", 32), stem_channels=None)
    assert variant_disagreements(unknown, xs) == []  # unknown sizes are not contradictions
