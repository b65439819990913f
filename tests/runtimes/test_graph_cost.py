"""A graph's memory and work are read from its shapes before it runs, and a graph over the limits
(or whose cost cannot be read) is refused in one line by every command. Expected costs are
computed by hand from the graphs built here; the hostile graphs come from
tests/runtimes/hostile_graphs.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from hostile_graphs import (
    broadcast_bomb,
    huge_constant_of_shape,
    products_after_coords,
    shape_from_the_image,
    uncosted_operator,
    worst_within_limits,
)
from onnx import TensorProto, helper

from converter.checkpoints import released as released_module
from converter.checkpoints.released import load_released
from converter.core.errors import OnnxModelError
from converter.runtimes import graph_cost
from converter.runtimes.graph_cost import check_graph_cost, graph_cost_of, shapes_only
from converter.runtimes.sessions import open_onnx_session

RELEASED = str(Path(released_module.__file__).with_name("released_xs.safetensors"))
MiB = 2**20


@pytest.fixture(scope="module")
def released(onnx_cache) -> Path:
    return onnx_cache.exported(load_released())[0]


def _graph(nodes: list, initializers=(), input_shape=("N", 3, 8, 8)) -> onnx.ModelProto:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape))
    out = helper.make_tensor_value_info("coords", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [image], [out], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def _constant(name: str, values: list[int]) -> onnx.NodeProto:
    tensor = helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


def test_work_and_peak_by_hand() -> None:
    """image [2, 3, 8, 8] -> Conv (4 filters 3x3, pad 1) -> MaxPool 2x2 -> MatMul with [4, 5]."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.0] * 108)
    matrix = helper.make_tensor("m", TensorProto.FLOAT, [4, 5], [0.0] * 20)
    model = _graph([
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["p"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["t", "m"], ["coords"]),
    ], [weight, matrix])  # fmt: skip
    cost = graph_cost_of(shapes_only(model), (2, 3, 8, 8))
    image, conv, pool, matmul = 2 * 3 * 64, 2 * 4 * 64, 2 * 4 * 16, 2 * 16 * 5
    conv_work = 16 * (image + 108 + conv) + conv * 27  # each output: 3 channels x 3 x 3
    pool_work = 16 * (conv + pool) + pool * 4
    transpose_work = 16 * (pool + pool)
    matmul_work = 16 * (pool + 20 + matmul) + matmul * 4
    assert cost.operations == conv_work + pool_work + transpose_work + matmul_work
    # live at most: the conv's output while the pool's is written (the image is the caller's)
    assert cost.peak_bytes == 4 * (conv + pool)
    assert cost.costliest == "the Conv node number 0"


def _constant_of(elements: int) -> onnx.ModelProto:
    """coords = image + min(ConstantOfShape([elements])): peak 4 x elements + 8 bytes (the
    float tensor and the int64 shape beside it, while it is written)."""
    return _graph([
        _constant("shape", [elements]),
        helper.make_node("ConstantOfShape", ["shape"], ["big"]),
        helper.make_node("ReduceMin", ["big"], ["least"], keepdims=0),
        helper.make_node("Add", ["image", "least"], ["coords"]),
    ])  # fmt: skip


def test_the_memory_limit_just_inside_and_just_outside() -> None:
    limit = graph_cost.PEAK_BYTES_BASE + graph_cost.PEAK_BYTES_PER_IMAGE  # batch 1: 256 MiB
    assert limit == 256 * MiB
    inside = (limit - 8) // 4
    assert check_graph_cost(shapes_only(_constant_of(inside)), (1, 3, 8, 8)).peak_bytes == limit
    over = r"268,435,460 bytes of live tensors \(limit 268,435,456 bytes at batch 1\)"
    with pytest.raises(OnnxModelError, match=over):
        check_graph_cost(shapes_only(_constant_of(inside + 1)), (1, 3, 8, 8))
    # the limit grows with the batch: 384 MiB at batch 2
    assert check_graph_cost(shapes_only(_constant_of(inside + 1)), (2, 3, 8, 8))


def test_the_work_limit_just_inside_and_just_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """[m, k] x [k, n] from two ConstantOfShape: 16 per element moved and m n k multiply-adds."""
    m, k, n = 300, 400, 500
    model = shapes_only(_graph([
        _constant("sa", [m, k]), _constant("sb", [k, n]),
        helper.make_node("ConstantOfShape", ["sa"], ["a"]),
        helper.make_node("ConstantOfShape", ["sb"], ["b"]),
        helper.make_node("MatMul", ["a", "b"], ["product"]),
        helper.make_node("ReduceMin", ["product"], ["least"], keepdims=0),
        helper.make_node("Add", ["image", "least"], ["coords"]),
    ]))  # fmt: skip
    image = 3 * 8 * 8
    work = (
        16 * 2 * 2  # the two Constants: 2 elements each
        + 16 * (2 + m * k)
        + 16 * (2 + k * n)  # the ConstantOfShapes read 2, write m k / k n
        + 16 * (m * k + k * n + m * n)
        + m * n * k
        + 4 * 16 * (m * n + 1)  # ReduceMin: 4 x the element weight (onnxruntime's is slow)
        + 16 * (image + 1 + image)
    )
    monkeypatch.setattr(graph_cost, "OPERATIONS_PER_IMAGE", 0)
    monkeypatch.setattr(graph_cost, "OPERATIONS_BASE", work)
    assert check_graph_cost(model, (1, 3, 8, 8)).operations == work
    monkeypatch.setattr(graph_cost, "OPERATIONS_BASE", work - 1)
    over = r"\d operations \(limit [\d,]+ at batch 1; most in the MatMul node"
    with pytest.raises(OnnxModelError, match=over):
        check_graph_cost(model, (1, 3, 8, 8))


def test_declared_shapes_are_not_believed() -> None:
    """A value_info declaring the huge tensor [1] changes nothing: shapes are inferred."""
    model = _constant_of(2**30)
    model.graph.value_info.append(helper.make_tensor_value_info("big", TensorProto.FLOAT, [1]))
    with pytest.raises(OnnxModelError, match="4096 MiB of live tensors"):
        check_graph_cost(shapes_only(model), (1, 3, 8, 8))


def test_exports_fit_the_limits_at_every_batch(released: Path) -> None:
    model = shapes_only(onnx.load(str(released)))
    for batch in (1, 2, 256):  # 256: the largest batch any command takes
        cost = check_graph_cost(model, (batch, 3, 256, 256))
        assert cost.peak_bytes < graph_cost.peak_bytes_limit(batch) / 4


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (huge_constant_of_shape, "32768 MiB of live tensors (limit 256 MiB at batch 1)"),
        (broadcast_bomb, "16385 MiB of live tensors"),
        (products_after_coords, "G operations (limit 16 G at batch 1; most in the MatMul node"),
        (shape_from_the_image, "the shape of 'picked_0' (the ConstantOfShape node number"),
        (uncosted_operator, "holds the Det node 'determinant', an operator a ConvNeXtPose graph"),
    ],
)
def test_costly_graphs_are_refused_before_a_session_exists(
    released: Path, tmp_path: Path, make, problem: str
) -> None:
    graph = make(released, tmp_path)
    with pytest.raises(OnnxModelError) as refused:
        open_onnx_session(graph, "cpu")
    assert problem in str(refused.value) and str(graph) in str(refused.value)


def test_a_costly_graph_is_one_line_and_exit_2_from_the_command_line(
    released: Path, tmp_path: Path
) -> None:
    graph = broadcast_bomb(released, tmp_path)
    # In a process of its own: were the refusal to regress, the 16 GiB would be asked of it.
    command = [sys.executable, "-m", "cnp_convert", "verify", str(graph),
               "--checkpoint", RELEASED]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "16385 MiB of live tensors" in line and "refused before it runs" in line


def test_the_worst_known_graph_is_just_under_both_limits(released: Path, tmp_path: Path) -> None:
    """docs/checkpoints.md measures this graph as the costliest that fits: it must fit, and
    nearly fill both limits (else a costlier one would be the worst)."""
    cost = check_graph_cost(
        shapes_only(onnx.load(str(worst_within_limits(released, tmp_path)))), (1, 3, 256, 256)
    )
    assert 0.9 < cost.peak_bytes / graph_cost.peak_bytes_limit(1) <= 1
    assert 0.95 < cost.operations / graph_cost.operations_limit(1) <= 1
