"""What running a graph at a given input shape costs, read from the graph before it runs.

A straight-line graph of standard operators still decides its own size: a ConstantOfShape of
2^40 floats, an Add broadcasting [65536, 1] with [1, 65536], or 5,000 products of 1024 x 1024
matrices after `coords` are each a few bytes of a file. The time limit (runtimes.watched) ends
such a run, but only after it has taken its memory and minutes. So every tensor's shape is
inferred at the shape the run will feed (onnx's shape inference with data propagation, on a copy
whose declared intermediate shapes are dropped: a declaration could lie), and from the shapes:
- the peak of live tensors, walking the nodes in their (topological) order and freeing each
  tensor after its last use: what a runtime's memory planner can at best reach, the same
  order a runtime runs them in;
- the work: multiply-adds for contractions (Conv, MatMul, Gemm, ...), kernel-sized windows for
  pooling, and ELEMENT_WEIGHT per element read or written (times a measured factor for the
  operators onnxruntime runs slowly) for everything else.
A graph whose shapes cannot all be inferred (a shape computed from the image's values), or that
holds an operator outside those a ConvNeXtPose graph is made of (its cost not linear in its
tensors: Det, DFT, recurrent cells, ...), is refused: its cost cannot be known before it runs.
The limits (docs/checkpoints.md, "Limits") are multiples of what this tool's exports need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import onnx
from onnx import helper, shape_inference

from ..core.errors import OnnxModelError, first_line

# Operators whose work is ELEMENT_WEIGHT per element read or written (up to a small constant):
# everything torch.onnx, onnxruntime's quantizer, float16 conversion and the graph simplifiers
# write for a ConvNeXtPose network, and their common equivalents.
# fmt: off
ELEMENTWISE_OPS = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh",
    "BatchNormalization", "BitShift", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat",
    "Constant", "ConstantOfShape", "Cos", "Cosh", "CumSum", "DepthToSpace", "DequantizeLinear",
    "Div", "Dropout", "DynamicQuantizeLinear", "Elu", "Equal", "Erf", "Exp", "Expand",
    "EyeLike", "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gelu",
    "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual",
    "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax", "Identity",
    "InstanceNormalization", "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less",
    "LessOrEqual", "Log", "LogSoftmax", "Max", "Mean", "Min", "Mish", "Mod", "Mul", "Neg",
    "Not", "OneHot", "Or", "PRelu", "Pad", "Pow", "QuantizeLinear", "Range", "Reciprocal",
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize",
    "Round", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign",
    "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split",
    "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "Transpose",
    "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
})
# fmt: on
CONTRACTION_OPS = frozenset(
    {
        "Conv",
        "ConvInteger",
        "QLinearConv",
        "ConvTranspose",
        "MatMul",
        "MatMulInteger",
        "QLinearMatMul",
        "Gemm",
    }
)  # fmt: skip
WINDOW_OPS = frozenset({"AveragePool", "MaxPool", "LpPool"})
COSTED_OPS = ELEMENTWISE_OPS | CONTRACTION_OPS | WINDOW_OPS

# A run may hold at most this many bytes of live tensors and do this much work: a base for what
# does not grow with the batch plus an amount per image; per image, 2.4x the memory and 2x the
# work of the costliest graphs this tool exports (docs/checkpoints.md, "Limits";
# benchmarks/graph_cost.py).
PEAK_BYTES_BASE = 128 * 2**20
PEAK_BYTES_PER_IMAGE = 128 * 2**20
OPERATIONS_BASE = 4 * 10**9
OPERATIONS_PER_IMAGE = 12 * 10**9
# An element read or written costs as much time as this many multiply-adds of a contraction
# (onnxruntime CPU: Erf, Exp or Add per element against MatMul or Conv per multiply-add;
# benchmarks/graph_cost.py).
ELEMENT_WEIGHT = 16
# Operators onnxruntime runs slower per element than ELEMENT_WEIGHT says, and by how much (a
# factor on it), so that no operator runs much slower per estimated operation than a Conv
# (benchmarks/graph_cost.py operators; docs/checkpoints.md, "Limits").
SLOW_ELEMENT_OPS = {
    "Asinh": 32, "Atanh": 32, "Sinh": 32, "Tan": 32, "Cosh": 16, "Mish": 16, "Softplus": 16,
    "Shrink": 16, "ReduceLogSumExp": 16, "Pow": 8, "CumSum": 8, "ReduceMax": 4, "ReduceMin": 4,
    "Acosh": 4, "Cos": 4, "Sin": 4, "Log": 4, "Sign": 4, "Hardmax": 4,
}  # fmt: skip
SLOW_RESIZE_MODES = {"cubic": 128, "linear": 4}
SOFTMAX_NOT_LAST_AXIS = 32  # Softmax, LogSoftmax or Hardmax over an axis that is not the last
# Initializers larger than this keep their dims only in the copy kept for inference: shape
# inference reads the values of small integer tensors (shapes, axes), never of weights.
_KEPT_VALUES = 4096


@dataclass(frozen=True)
class GraphCost:
    """A graph's cost at one input shape. costliest: the node doing the most work."""

    input_shape: tuple[int, ...]
    peak_bytes: int
    operations: int
    costliest: str

    def describe(self) -> str:
        return (
            f"{self.peak_bytes / 2**20:.1f} MiB of live tensors at most, "
            f"{self.operations / 1e9:.2f} G operations"
        )


def peak_bytes_limit(batch: int) -> int:
    return PEAK_BYTES_BASE + PEAK_BYTES_PER_IMAGE * batch


def operations_limit(batch: int) -> int:
    return OPERATIONS_BASE + OPERATIONS_PER_IMAGE * batch


def shapes_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model for cost inference: large initializers keep their dims, not their
    values, and no intermediate shape is taken from the file."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        if math.prod(tensor.dims) > _KEPT_VALUES:
            for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                tensor.ClearField(field)
            tensor.ClearField("external_data")
            tensor.data_location = onnx.TensorProto.DEFAULT
    del copy.graph.value_info[:]
    for output in copy.graph.output:
        if output.type.HasField("tensor_type"):
            output.type.tensor_type.ClearField("shape")
    return copy


def fed_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph's one input that is not an initializer (OnnxModelError if not exactly one)."""
    initialized = {t.name for t in model.graph.initializer}
    fed = [i for i in model.graph.input if i.name not in initialized]
    if len(fed) != 1:
        raise OnnxModelError(f"expected one input, the graph has {len(fed)}")
    return fed[0]


def _shape(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    kind = value.type
    if not kind.HasField("tensor_type") or not kind.tensor_type.HasField("shape"):
        return None
    dims = kind.tensor_type.shape.dim
    if any(not d.HasField("dim_value") or d.dim_value < 0 for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def _itemsize(element_type: int) -> int:
    try:
        return helper.tensor_dtype_to_np_dtype(element_type).itemsize
    except (KeyError, TypeError, ValueError):  # strings and types numpy lacks: as 8 bytes
        return 8


def _element_weight(node: onnx.NodeProto, outs: list[tuple[int, ...]]) -> int:
    """ELEMENT_WEIGHT, times SLOW_ELEMENT_OPS' factor for the operators that need it."""
    op, factor = node.op_type, SLOW_ELEMENT_OPS.get(node.op_type, 1)
    attributes = {a.name: a for a in node.attribute}
    if op == "Resize":
        mode = attributes["mode"].s.decode(errors="replace") if "mode" in attributes else ""
        factor = SLOW_RESIZE_MODES.get(mode, 1)
    elif op in ("Softmax", "LogSoftmax", "Hardmax") and outs:
        rank = len(outs[0])
        axis = attributes["axis"].i if "axis" in attributes else -1
        if rank and axis % rank != rank - 1:
            factor = max(factor, SOFTMAX_NOT_LAST_AXIS)
    return ELEMENT_WEIGHT * factor


def _node_work(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """Operations one node does, from its tensors' shapes."""
    ins = [shapes.get(name) for name in node.input if name]
    outs = [shapes[name] for name in node.output if name]
    moved = _element_weight(node, outs) * (
        sum(math.prod(s) for s in ins if s is not None) + sum(math.prod(s) for s in outs)
    )
    op = node.op_type
    if op in WINDOW_OPS:
        kernel = next((a.ints for a in node.attribute if a.name == "kernel_shape"), [1])
        return moved + math.prod(outs[0]) * math.prod(kernel)
    if op not in CONTRACTION_OPS:
        return moved
    weight = ins[3] if op == "QLinearConv" else (ins[1] if len(ins) > 1 else None)
    data = ins[0]
    if weight is None or data is None or not outs:
        raise OnnxModelError(f"{op} node {node.name[:80]!r}: its inputs' shapes are unknown")
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        per_output = math.prod(weight[1:])  # input channels per group x kernel
        return moved + math.prod(outs[0]) * per_output
    if op == "ConvTranspose":
        return moved + math.prod(data) * math.prod(weight[1:])
    if op == "Gemm":
        transposed = any(a.name == "transA" and a.i for a in node.attribute)
        depth = data[0] if transposed else data[-1]
        return moved + math.prod(outs[0]) * depth
    return moved + math.prod(outs[0]) * (data[-1] if data else 1)  # MatMul and its kin


def graph_cost_of(model: onnx.ModelProto, input_shape: Sequence[int]) -> GraphCost:
    """The cost of one run of a shapes_only model fed a tensor of input_shape; OnnxModelError
    when it cannot be known before the run."""
    inferred = onnx.ModelProto()
    inferred.CopyFrom(model)
    fed = fed_input(inferred)
    dims = fed.type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise OnnxModelError(f"its input has {len(dims)} dims, the run feeds {len(input_shape)}")
    for dim, size in zip(dims, input_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)
    try:
        inferred = shape_inference.infer_shapes(inferred, strict_mode=True, data_prop=True)
    except Exception as exc:  # InferenceError, ValidationError: the runtime could not run it
        raise OnnxModelError(
            f"its tensors' shapes cannot be inferred ({first_line(exc)[:200]})"
        ) from None
    shapes: dict[str, tuple[int, ...]] = {}
    sizes: dict[str, int] = {}
    graph = inferred.graph
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    for value in (*graph.input, *graph.value_info, *graph.output):
        shape = _shape(value)
        if shape is not None:
            shapes[value.name] = shape
            sizes[value.name] = math.prod(shape) * _itemsize(value.type.tensor_type.elem_type)
    return _walk(graph.node, shapes, sizes, {o.name for o in graph.output}, tuple(input_shape))


def _node_name(node: onnx.NodeProto, index: int) -> str:
    name = repr(node.name[:80]) if node.name else f"number {index}"
    return f"the {node.op_type[:80]} node {name}"


def _walk(
    nodes: Iterable[onnx.NodeProto],
    shapes: dict[str, tuple[int, ...]],
    sizes: dict[str, int],
    outputs: set[str],
    input_shape: tuple[int, ...],
) -> GraphCost:
    nodes = list(nodes)
    last_use = {name: index for index, node in enumerate(nodes) for name in node.input}
    held: dict[str, int] = {}  # tensors computed and still needed: name -> bytes
    live = peak = work = most = 0
    costliest = ""
    for index, node in enumerate(nodes):
        if node.op_type not in COSTED_OPS:
            raise OnnxModelError(
                f"holds {_node_name(node, index)}, an operator a "
                "ConvNeXtPose graph does not use and whose cost cannot be read from its shapes"
            )
        for name in node.output:
            if name and name not in sizes:
                raise OnnxModelError(
                    f"the shape of {name[:80]!r} ({_node_name(node, index)}) cannot be known "
                    "before the run (it follows from the image's values, or is not a tensor)"
                )
        for name in node.output:
            if name:
                held[name] = sizes[name]
                live += sizes[name]
        peak = max(peak, live)
        node_work = _node_work(node, shapes)
        work += node_work
        if node_work > most:
            most, costliest = node_work, _node_name(node, index)
        for name in {*node.input, *node.output}:
            if name in held and name not in outputs and last_use.get(name, index) <= index:
                live -= held.pop(name)  # its last use (or never used): freed
    return GraphCost(input_shape, peak, work, costliest)


def _amounts(value: int, limit: int, unit: int, name: str, exact: str) -> tuple[str, str]:
    """value and limit in units of `unit`, exact when rounding would make them look equal."""
    shown, allowed = f"{value / unit:.0f} {name}", f"{limit / unit:.0f} {name}"
    if shown == allowed:
        return f"{value:,} {exact}", f"{limit:,} {exact}"
    return shown, allowed


def check_graph_cost(model: onnx.ModelProto, input_shape: Sequence[int]) -> GraphCost:
    """graph_cost_of within the limits for its batch, or OnnxModelError saying which is over."""
    cost = graph_cost_of(model, input_shape)
    batch = int(input_shape[0]) if input_shape else 1
    over = []
    if cost.peak_bytes > peak_bytes_limit(batch):
        limit = peak_bytes_limit(batch)
        shown, allowed = _amounts(cost.peak_bytes, limit, 2**20, "MiB", "bytes")
        over.append(f"{shown} of live tensors (limit {allowed} at batch {batch})")
    if cost.operations > operations_limit(batch):
        limit = operations_limit(batch)
        shown, allowed = _amounts(cost.operations, limit, 10**9, "G", "")
        over.append(
            f"{shown.strip()} operations (limit {allowed.strip()} at batch {batch}; most in "
            f"{cost.costliest})"
        )
    if over:
        raise OnnxModelError(
            f"would need {' and '.join(over)}; a ConvNeXtPose graph needs far less: "
            "refused before it runs"
        )
    return cost
