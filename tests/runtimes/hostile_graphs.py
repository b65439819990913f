"""Generators of graphs a runtime must never be asked to run: a Loop that would not end, a node
from a custom domain, a local function; and a straight-line graph that runs for minutes.

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


def slow_after_coords(graph: Path, folder: Path, steps: int = 5000, size: int = 1024) -> Path:
    """A real export whose coords wait on `steps` products of size x size matrices (about 2
    GFLOP each, so minutes in all): no control flow, nothing a bound on the graph can see. The
    matrices come from the image (nothing to fold at load time) and keep every value 1/size."""
    fill = 1.0 / size
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["slow_mean"], keepdims=0),
        helper.make_node(
            "Constant",
            [],
            ["slow_zero"],
            value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
        ),
        helper.make_node(
            "Constant",
            [],
            ["slow_fill"],
            value=helper.make_tensor("f", TensorProto.FLOAT, [], [fill]),
        ),
        helper.make_node(
            "Constant",
            [],
            ["slow_shape"],
            value=helper.make_tensor("s", TensorProto.INT64, [2], [size, size]),
        ),
        helper.make_node("Mul", ["slow_mean", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Add", ["slow_nothing", "slow_fill"], ["slow_value"]),
        helper.make_node("Expand", ["slow_value", "slow_shape"], ["slow_0"]),
    ]
    for step in range(steps):
        nodes.append(helper.make_node("MatMul", [f"slow_{step}", "slow_0"], [f"slow_{step + 1}"]))
    nodes += [
        helper.make_node("ReduceMin", [f"slow_{steps}"], ["slow_min"], keepdims=0),
        helper.make_node("Mul", ["slow_min", "slow_zero"], ["slow_offset"]),
        helper.make_node("Add", ["coords_before", "slow_offset"], ["coords"]),
    ]  # fmt: skip
    return _rewired_coords(graph, folder, "slow_after_coords", nodes)


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
