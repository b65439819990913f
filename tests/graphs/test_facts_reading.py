"""graph_facts on hand-built graphs that other exporters produce: weights in Constant nodes,
Resize nodes relying on ONNX's attribute defaults, other opset spellings, no graph input."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converter.graphs.facts import graph_facts


def _model(nodes, inputs, outputs, initializers=(), opsets=(("", 18),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opset_imports = [helper.make_opsetid(domain, version) for domain, version in opsets]
    return helper.make_model(graph, opset_imports=opset_imports)


def _image(channels: int = 3) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, 8, 8])


def test_conv_weights_in_constant_nodes_give_the_channels() -> None:
    stem = numpy_helper.from_array(np.zeros((40, 3, 1, 1), np.float32))
    final = numpy_helper.from_array(np.zeros((576, 40, 1, 1), np.float32))
    nodes = [
        helper.make_node("Constant", [], ["stem.w"], value=stem),
        helper.make_node("Conv", ["image", "stem.w"], ["a"]),
        helper.make_node("Constant", [], ["final.w"], value=final),
        helper.make_node("Conv", ["a", "final.w"], ["coords"]),
    ]
    out = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    facts = graph_facts(_model(nodes, [_image()], [out]))
    assert (facts.stem_channels, facts.final_conv_channels) == (40, 576)


def test_a_weight_computed_at_run_time_has_unknown_channels() -> None:
    # ConstantOfShape's "value" is the fill value (one element), not the weight's shape.
    shape = numpy_helper.from_array(np.array([576, 3, 1, 1], np.int64), "shape")
    fill = numpy_helper.from_array(np.zeros(1, np.float32))
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["w"], value=fill),
        helper.make_node("Conv", ["image", "w"], ["coords"]),
    ]
    out = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    facts = graph_facts(_model(nodes, [_image()], [out], [shape]))
    assert facts.stem_channels is None and facts.final_conv_channels is None


def test_resize_without_attributes_reads_as_onnx_defaults() -> None:
    # ONNX Resize: mode defaults to nearest, coordinate_transformation_mode to half_pixel.
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["image", "", "scales"], ["up"])]
    out = helper.make_tensor_value_info("up", TensorProto.FLOAT, None)
    facts = graph_facts(_model(nodes, [_image()], [out], [scales]))
    assert facts.resize_modes == ("nearest/half_pixel",) and not facts.resize_align_corners
    assert facts.to_dict()["resize_modes"] == ["nearest/half_pixel"]


def test_resize_modes_that_are_not_text_are_read_as_shown() -> None:
    # A file's string attribute need not be UTF-8, nor an attribute named "mode" a string: the
    # facts show what is there (the contract then refuses the mode by name), never raise.
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["image", "", "scales"], ["up"], mode=b"\x80inear",
                              coordinate_transformation_mode=7)]  # fmt: skip
    out = helper.make_tensor_value_info("up", TensorProto.FLOAT, None)
    facts = graph_facts(_model(nodes, [_image()], [out], [scales]))
    assert facts.resize_modes == ("\ufffdinear/7",) and not facts.resize_align_corners


def test_opset_under_either_name_of_the_default_domain() -> None:
    nodes = [helper.make_node("Relu", ["image"], ["y"])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    spelled = _model(nodes, [_image()], [out], opsets=(("com.microsoft", 1), ("ai.onnx", 17)))
    assert graph_facts(spelled).opset == 17
    assert graph_facts(spelled).to_dict()["opset"] == 17
    only_custom = _model(nodes, [_image()], [out], opsets=(("com.microsoft", 1),))
    assert graph_facts(only_custom).opset == 0  # no default-domain opset: unknown, reported as 0


def test_a_graph_without_inputs_or_convs_has_no_input_facts() -> None:
    value = numpy_helper.from_array(np.ones((1, 2), np.float32))
    nodes = [helper.make_node("Constant", [], ["y"], value=value)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    facts = graph_facts(_model(nodes, [], [out]))
    assert facts.input_names == () and facts.input_shape is None and facts.input_elem_type == 0
    assert facts.stem_channels is None and facts.final_conv_channels is None
    assert facts.final_conv_hw is None and facts.heatmap_hw is None
    payload = facts.to_dict()
    assert payload["input_shape"] is None and payload["final_conv_hw"] is None
    assert payload["heatmap_hw"] is None and payload["output_shapes"] == {"y": [1, 2]}
    assert payload["precision"] == "fp32"
    unknown = _model(nodes, [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert graph_facts(unknown).to_dict()["output_shapes"] == {"y": None}


def test_a_non_square_heatmap_keeps_height_then_width() -> None:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 6])
    weight = numpy_helper.from_array(np.zeros((576, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["coords"])]
    out = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    model = onnx.shape_inference.infer_shapes(_model(nodes, [image], [out], [weight]))
    facts = graph_facts(model)
    assert facts.final_conv_hw == (8, 6) and facts.heatmap_hw == (8, 6)  # (H, W) of NCHW


def test_graph_facts_carry_the_precision_the_graph_computes_in() -> None:
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "z")
    nodes = [helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]  # fmt: skip
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    facts = graph_facts(_model(nodes, [_image()], [out], [scale, zero]))
    assert facts.precision == "int8" and facts.to_dict()["precision"] == "int8"


def _weighted_conv(chain: list[str]) -> onnx.ModelProto:
    """One Conv whose 576-channel weight reaches it through the given ops, in order."""
    weight = numpy_helper.from_array(np.zeros((576, 3, 1, 1), np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes, name = [], "w"
    for i, op in enumerate(chain):
        inputs = [name] if op == "Cast" else [name, "s", "z"]
        attrs = {"to": TensorProto.FLOAT} if op == "Cast" else {}
        nodes.append(helper.make_node(op, inputs, [f"w{i}"], **attrs))
        name = f"w{i}"
    nodes.append(helper.make_node("Conv", ["image", name], ["coords"]))
    out = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    return _model(nodes, [_image()], [out], [weight, scale, zero])


def test_conv_channels_are_read_through_quantization_and_casts() -> None:
    # An int8 graph's weight comes through Q -> DQ, an fp16 graph's through a Cast.
    for chain in (["Cast"], ["DequantizeLinear"], ["QuantizeLinear", "DequantizeLinear", "Cast"]):
        facts = graph_facts(_weighted_conv(chain))
        assert (facts.stem_channels, facts.final_conv_channels) == (576, 576), chain


def test_the_walk_to_a_conv_weight_is_bounded() -> None:
    # Four pass-through ops (one more than the three kinds) are seen through, a fifth is not.
    assert graph_facts(_weighted_conv(["Cast"] * 4)).final_conv_channels == 576
    assert graph_facts(_weighted_conv(["Cast"] * 5)).final_conv_channels is None


def test_a_conv_without_a_readable_weight_has_unknown_channels() -> None:
    # a weight fed as a graph input (nothing to read its shape from), or no weight at all
    weight = helper.make_tensor_value_info("w", TensorProto.FLOAT, [576, 3, 1, 1])
    nodes = [helper.make_node("Conv", ["image", "w"], ["coords"])]
    out = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    assert graph_facts(_model(nodes, [_image(), weight], [out])).final_conv_channels is None
    bare = [helper.make_node("Conv", ["image"], ["coords"])]
    facts = graph_facts(_model(bare, [_image()], [out]))
    assert facts.stem_channels is None and facts.final_conv_channels is None


def _upsampled_conv(casts: int) -> onnx.ModelProto:
    """Final Conv -> `casts` Casts -> Resize to 16x16: the conv moved before the upsampling."""
    weight = numpy_helper.from_array(np.zeros((576, 3, 1, 1), np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes, name = [helper.make_node("Conv", ["image", "w"], ["c"])], "c"
    for i in range(casts):
        nodes.append(helper.make_node("Cast", [name], [f"c{i}"], to=TensorProto.FLOAT))
        name = f"c{i}"
    nodes.append(helper.make_node("Resize", [name, "", "scales"], ["up"], mode="linear"))
    out = helper.make_tensor_value_info("up", TensorProto.FLOAT, [1, 576, 16, 16])
    return _model(nodes, [_image()], [out], [weight, scales])


def test_the_walk_to_the_upsampling_resize_is_bounded() -> None:
    # seven pass-through ops between the conv and its Resize are seen through, an eighth is not
    assert graph_facts(_upsampled_conv(7)).upsampled_hw == (16, 16)
    assert graph_facts(_upsampled_conv(8)).upsampled_hw is None


def test_a_resize_reading_the_conv_as_its_scales_is_not_its_upsampling() -> None:
    weight = numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"]),
        helper.make_node("Resize", ["image", "", "c"], ["up"]),  # c as the scales input
    ]
    out = helper.make_tensor_value_info("up", TensorProto.FLOAT, [1, 3, 16, 16])
    facts = graph_facts(_model(nodes, [_image()], [out], [weight]))
    assert facts.resize_count == 1 and facts.upsampled_hw is None


def test_a_mode_that_is_not_text_is_shown_cut_to_forty_characters() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["image", "", "scales"], ["up"], mode=[1.0] * 20)]
    out = helper.make_tensor_value_info("up", TensorProto.FLOAT, None)
    facts = graph_facts(_model(nodes, [_image()], [out], [scales]))
    # repr "[1.0, 1.0, ..." : 5 characters for the first value, 5 more for each next one
    assert facts.resize_modes == ("[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,/half_pixel",)


def _ending_in(ops_after_div: list[str], extra_outputs: bool = False) -> onnx.ModelProto:
    """coords = Div(image, mass) followed by the given Identity/Cast ops."""
    mass = numpy_helper.from_array(np.array(2.0, np.float32), "mass")
    nodes, name = [helper.make_node("Div", ["image", "mass"], ["d"])], "d"
    for i, op in enumerate(ops_after_div):
        attrs = {"to": TensorProto.FLOAT} if op == "Cast" else {}
        nodes.append(helper.make_node(op, [name], [f"t{i}"], **attrs))
        name = f"t{i}"
    nodes.append(helper.make_node("Identity", [name], ["coords"]))
    outputs = [helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)]
    if extra_outputs:
        nodes.append(helper.make_node("Relu", ["image"], ["relu"]))
        nodes.append(helper.make_node("Identity", ["image"], ["copy"]))
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                    for n in ("relu", "copy", "image")]  # fmt: skip
    return _model(nodes, [_image()], outputs, [mass])


def test_output_ops_are_read_through_identity_and_cast() -> None:
    facts = graph_facts(_ending_in(["Cast", "Identity"], extra_outputs=True))
    # an output that is the graph input itself, directly or through Identity, comes from "input"
    expected = {"coords": "Div", "relu": "Relu", "copy": "input", "image": "input"}
    assert facts.output_ops == expected and facts.to_dict()["output_ops"] == expected
    assert facts.divides_by_mass("coords") and not facts.divides_by_mass("relu")
    assert not facts.divides_by_mass("copy") and not facts.divides_by_mass("missing")


def test_the_walk_to_an_output_op_is_bounded() -> None:
    # eight Identity/Cast hops are seen through (seven here plus the output's own), a ninth not
    assert graph_facts(_ending_in(["Identity"] * 7)).output_ops == {"coords": "Div"}
    assert graph_facts(_ending_in(["Identity"] * 8)).output_ops == {"coords": "Identity"}
