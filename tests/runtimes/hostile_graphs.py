"""Generators of graphs a runtime must never be asked to run: a Loop that would not end, a node
from a custom domain, a local function, graphs whose shapes say they need gigabytes or minutes
(or cannot say), and a straight-line graph within those bounds that still runs for minutes.

    python tests/runtimes/hostile_graphs.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def _image_to_coords(nodes: list, extra_inputs=(), functions=()) -> onnx.ModelProto:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 256, 256])
    coords = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "hostile", [image, *extra_inputs], [coords])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("evil.ops", 1)],
        functions=list(functions),
    )  # fmt: skip
    model.ir_version = 8
    return model


def _endless(value: str, out: str, trips: int) -> list:
    """Nodes passing value to out through a Loop of `trips` iterations that each do nothing."""
    body_in = [
        helper.make_tensor_value_info("i", TensorProto.INT64, []),
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
    ]
    body_out = [
        helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x_out", TensorProto.FLOAT, None),
    ]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond"], ["cond_out"]),
            helper.make_node("Identity", ["x"], ["x_out"]),
        ],
        "body", body_in, body_out,
    )  # fmt: skip
    trips_value = helper.make_tensor("t", TensorProto.INT64, [], [trips])
    go_value = helper.make_tensor("g", TensorProto.BOOL, [], [True])
    return [
        helper.make_node("Constant", [], ["trips"], value=trips_value),
        helper.make_node("Constant", [], ["go"], value=go_value),
        helper.make_node("Loop", ["trips", "go", value], [out], body=body, name="forever"),
    ]


def endless_loop(folder: Path, trips: int = 2**62) -> Path:
    """coords = image after a Loop of `trips` iterations: runs without end."""
    path = folder / "endless_loop.onnx"
    onnx.save(_image_to_coords(_endless("image", "coords", trips)), str(path))
    return path


def loop_after_coords(graph: Path, folder: Path, trips: int = 2**62) -> Path:
    """A real export (its metadata, shapes and variant facts intact) whose coords pass through
    an endless Loop: everything a verdict checks before running still fits."""
    model = onnx.load(str(graph))
    for node in model.graph.node:
        node.output[:] = ["coords_before_loop" if o == "coords" else o for o in node.output]
    model.graph.node.extend(_endless("coords_before_loop", "coords", trips))
    path = folder / "loop_after_coords.onnx"
    onnx.save(model, str(path))
    return path


def _rewired_coords(graph: Path, folder: Path, name: str, nodes: list) -> Path:
    """A real export whose coords feed `nodes`, which make the new output named in `name`."""
    model = onnx.load(str(graph))
    for node in model.graph.node:
        node.output[:] = ["coords_before" if o == "coords" else o for o in node.output]
    model.graph.node.extend(nodes)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def nan_coords(graph: Path, folder: Path) -> Path:
    """Right metadata and shapes, and NaN for every coordinate."""
    nan = helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")])
    return _rewired_coords(graph, folder, "nan_coords", [
        helper.make_node("Constant", [], ["nan_value"], value=nan),
        helper.make_node("Mul", ["coords_before", "nan_value"], ["coords"]),
    ])  # fmt: skip


def constant_without_data(graph: Path, folder: Path) -> Path:
    """A Constant declaring dims [1] and holding no data (one byte of a real export's Constant
    changed does this: the fuzzer found it), added to coords."""
    empty = helper.make_tensor("empty", TensorProto.FLOAT, [1], [0.0])
    empty.ClearField("float_data")
    return _rewired_coords(graph, folder, "constant_without_data", [
        helper.make_node("Constant", [], ["empty_value"], value=empty),
        helper.make_node("Add", ["coords_before", "empty_value"], ["coords"]),
    ])  # fmt: skip


def _not_utf8(graph: Path, folder: Path, name: str, field: bytes, skip: int = 0) -> Path:
    """The graph with the byte `skip` bytes into the first `field` changed to 0x80."""
    data = graph.read_bytes()
    at = data.index(field) + skip
    path = folder / f"{name}.onnx"
    path.write_bytes(data[:at] + b"\x80" + data[at + 1 :])
    return path


def operator_not_utf8(graph: Path, folder: Path) -> Path:
    """The released graph with the first byte of its first Relu's operator name changed to 0x80
    (the fuzzer found it: protobuf hands such a field back as bytes, and sorting the operator
    names raised TypeError). The field is its length byte, then the name."""
    return _not_utf8(graph, folder, "operator_not_utf8", b"\x04Relu", skip=1)


def dimension_name_not_utf8(graph: Path, folder: Path) -> Path:
    """The released graph with the first byte of its input's batch symbol changed to 0x80 (a scan
    of every name found it: onnxruntime's wrapper raised UnicodeDecodeError reading the input's
    shape)."""
    return _not_utf8(graph, folder, "dimension_name_not_utf8", b"batch")


def resize_mode_not_utf8(graph: Path, folder: Path) -> Path:
    """The released graph with one byte of a Resize's mode attribute changed to 0x80 (the fuzzer
    found it: decoding the mode for the graph contract raised UnicodeDecodeError)."""
    return _not_utf8(graph, folder, "resize_mode_not_utf8", b"align_corners")


def flat_coords(graph: Path, folder: Path) -> Path:
    """coords flattened to (N, 54): the right numbers in the wrong shape."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [0, -1])
    return _rewired_coords(graph, folder, "flat_coords", [
        helper.make_node("Constant", [], ["flat_shape"], value=shape),
        helper.make_node("Reshape", ["coords_before", "flat_shape"], ["coords"]),
    ])  # fmt: skip


def no_coords(graph: Path, folder: Path) -> Path:
    """The same graph with its output named 'joints'."""
    model = onnx.load(str(graph))
    for node in model.graph.node:
        node.output[:] = ["joints" if o == "coords" else o for o in node.output]
    for output in model.graph.output:
        if output.name == "coords":
            output.name = "joints"
    path = folder / "no_coords.onnx"
    onnx.save(model, str(path))
    return path


def _from_the_image(prefix: str, value: float, shape: list[int]) -> list:
    """Nodes making f"{prefix}_0", a tensor of `shape` holding `value` everywhere, computed from
    the image (so nothing can be folded when the graph loads)."""
    return [
        helper.make_node("ReduceMean", ["image"], [f"{prefix}_mean"], keepdims=0),
        helper.make_node("Constant", [], [f"{prefix}_zero"],
                         value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Constant", [], [f"{prefix}_fill"],
                         value=helper.make_tensor("f", TensorProto.FLOAT, [], [value])),
        helper.make_node("Constant", [], [f"{prefix}_shape"],
                         value=helper.make_tensor("s", TensorProto.INT64, [len(shape)], shape)),
        helper.make_node("Mul", [f"{prefix}_mean", f"{prefix}_zero"], [f"{prefix}_nothing"]),
        helper.make_node("Add", [f"{prefix}_nothing", f"{prefix}_fill"], [f"{prefix}_value"]),
        helper.make_node("Expand", [f"{prefix}_value", f"{prefix}_shape"], [f"{prefix}_0"]),
    ]  # fmt: skip


def _added_to_coords(prefix: str, last: str) -> list:
    """Nodes adding 0 x min(last) to the coords: the result waits on `last`."""
    return [
        helper.make_node("ReduceMin", [last], [f"{prefix}_min"], keepdims=0),
        helper.make_node("Mul", [f"{prefix}_min", f"{prefix}_zero"], [f"{prefix}_offset"]),
        helper.make_node("Add", ["coords_before", f"{prefix}_offset"], ["coords"]),
    ]


def products_after_coords(graph: Path, folder: Path, steps: int = 5000, size: int = 1024) -> Path:
    """A real export whose coords wait on `steps` products of size x size matrices (about 2
    GFLOP each, so minutes in all): no control flow; its shapes say what it costs, and that is
    over the limit. The matrices keep every value 1/size."""
    nodes = _from_the_image("slow", 1.0 / size, [size, size])
    for step in range(steps):
        nodes.append(helper.make_node("MatMul", [f"slow_{step}", "slow_0"], [f"slow_{step + 1}"]))
    nodes += _added_to_coords("slow", f"slow_{steps}")
    return _rewired_coords(graph, folder, "products_after_coords", nodes)


def slow_after_coords(graph: Path, folder: Path, steps: int = 80, size: int = 1024) -> Path:
    """A real export whose coords wait on `steps` softmaxes of an 8 x size x size tensor over
    its 8 channels: about 20 s of work on one thread, no control flow. Over an axis that is not
    the last, onnxruntime's Softmax is 50x slower per element than over the last, and the cost
    read from the shapes says so (the graph is refused); with that factor set to 1 it stands
    for an operator whose cost the shapes understate, which only the time limit or a signal
    ends."""
    nodes = _from_the_image("slow", 1.0, [1, 8, size, size])
    for step in range(steps):
        nodes.append(helper.make_node("Softmax", [f"slow_{step}"], [f"slow_{step + 1}"], axis=1))
    nodes += _added_to_coords("slow", f"slow_{steps}")
    return _rewired_coords(graph, folder, "slow_after_coords", nodes)


def worst_within_limits(graph: Path, folder: Path, steps: int = 45, held: int = 45 * 2**20) -> Path:
    """The costliest graph known to fit the limits at batch 1 (docs/checkpoints.md, "Limits"):
    a real export whose coords wait on `steps` Celus (the slowest operator per estimated
    operation measured) of an 8 x 1024 x 1024 tensor, while `held` floats made at the start
    stay live to the end: near the memory and the work limit at once."""
    nodes = _from_the_image("worst", 1.0, [1, 8, 1024, 1024])
    nodes += [
        helper.make_node("Constant", [], ["worst_held_shape"],
                         value=helper.make_tensor("h", TensorProto.INT64, [1], [held])),
        helper.make_node("ConstantOfShape", ["worst_held_shape"], ["worst_held"]),
    ]  # fmt: skip
    for step in range(steps):
        nodes.append(helper.make_node("Celu", [f"worst_{step}"], [f"worst_{step + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", ["worst_held"], ["worst_held_min"], keepdims=0),
        helper.make_node("Add", [f"worst_{steps}", "worst_held_min"], ["worst_last"]),
    ]
    nodes += _added_to_coords("worst", "worst_last")
    return _rewired_coords(graph, folder, "worst_within_limits", nodes)


def huge_constant_of_shape(graph: Path, folder: Path, elements: int = 2**33) -> Path:
    """coords plus 0 x the minimum of a ConstantOfShape of `elements` floats (32 GiB): a few
    bytes that a runtime would allocate (or fold when it loads the graph)."""
    zero = helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Constant", [], ["huge_shape"],
                         value=helper.make_tensor("s", TensorProto.INT64, [1], [elements])),
        helper.make_node("ConstantOfShape", ["huge_shape"], ["huge_0"]),
        helper.make_node("Constant", [], ["huge_zero"], value=zero),
    ]  # fmt: skip
    nodes += _added_to_coords("huge", "huge_0")
    return _rewired_coords(graph, folder, "huge_constant_of_shape", nodes)


def broadcast_bomb(graph: Path, folder: Path, side: int = 65536) -> Path:
    """coords plus 0 x the minimum of [side, 1] + [1, side] (16 GiB from two 256 KB vectors)."""
    zero = helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])
    column = helper.make_tensor("c", TensorProto.FLOAT, [side, 1], [0.0] * side)
    row = helper.make_tensor("r", TensorProto.FLOAT, [1, side], [0.0] * side)
    nodes = [
        helper.make_node("Constant", [], ["bomb_column"], value=column),
        helper.make_node("Constant", [], ["bomb_row"], value=row),
        helper.make_node("Add", ["bomb_column", "bomb_row"], ["bomb_0"]),
        helper.make_node("Constant", [], ["bomb_zero"], value=zero),
    ]
    nodes += _added_to_coords("bomb", "bomb_0")
    return _rewired_coords(graph, folder, "broadcast_bomb", nodes)


def shape_from_the_image(graph: Path, folder: Path) -> Path:
    """coords plus 0 x a ConstantOfShape whose length is the image's largest pixel value times
    10^12: its size cannot be known until the image is."""
    scale = helper.make_tensor("k", TensorProto.FLOAT, [], [1e12])
    zero = helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("ReduceMax", ["image"], ["picked_max"], keepdims=1),
        helper.make_node("Constant", [], ["picked_scale"], value=scale),
        helper.make_node("Mul", ["picked_max", "picked_scale"], ["picked_length"]),
        helper.make_node("Reshape", ["picked_length", "picked_one"], ["picked_flat"]),
        helper.make_node("Cast", ["picked_flat"], ["picked_shape"], to=TensorProto.INT64),
        helper.make_node("ConstantOfShape", ["picked_shape"], ["picked_0"]),
        helper.make_node("Constant", [], ["picked_zero"], value=zero),
    ]
    nodes.insert(
        0,
        helper.make_node(
            "Constant",
            [],
            ["picked_one"],
            value=helper.make_tensor("o", TensorProto.INT64, [1], [1]),
        ),
    )
    nodes += _added_to_coords("picked", "picked_0")
    return _rewired_coords(graph, folder, "shape_from_the_image", nodes)


def uncosted_operator(graph: Path, folder: Path, side: int = 2048) -> Path:
    """coords plus 0 x the determinant of a side x side matrix: Det's work grows as side^3, not
    with its tensors, so no shape says what it costs."""
    nodes = _from_the_image("det", 1.0, [side, side])
    nodes.append(helper.make_node("Det", ["det_0"], ["det_value"], name="determinant"))
    nodes += _added_to_coords("det", "det_value")
    return _rewired_coords(graph, folder, "uncosted_operator", nodes)


def custom_domain(folder: Path) -> Path:
    nodes = [helper.make_node("Exfiltrate", ["image"], ["coords"], domain="evil.ops")]
    path = folder / "custom_domain.onnx"
    onnx.save(_image_to_coords(nodes), str(path))
    return path


def local_function(folder: Path) -> Path:
    function = helper.make_function(
        "evil.ops", "Same", ["x"], ["y"], [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_opsetid("", 18)],
    )  # fmt: skip
    nodes = [helper.make_node("Same", ["image"], ["coords"], domain="evil.ops")]
    path = folder / "local_function.onnx"
    onnx.save(_image_to_coords(nodes, functions=[function]), str(path))
    return path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for make in (endless_loop, custom_domain, local_function):
        print(make(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
