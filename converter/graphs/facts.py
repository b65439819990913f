"""Facts read off an ONNX graph, to check that it fits a variant without running it.

Used after export (the graph contract) and before verification (does this graph belong to the
checkpoint at all?). Everything here reads the protobuf; nothing executes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from ..core.variants import VariantSpec

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


def _dims(value_type: onnx.TypeProto) -> tuple[Dim, ...] | None:
    if not value_type.tensor_type.HasField("shape"):
        return None
    out: list[Dim] = []
    for dim in value_type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            out.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            out.append(dim.dim_param)
        else:
            out.append(None)
    return tuple(out)


def format_shape(shape: tuple[Dim, ...] | None) -> str:
    if shape is None:
        return "unknown"
    return "x".join("?" if d is None else str(d) for d in shape)


@dataclass(frozen=True)
class GraphFacts:
    opset: int
    node_count: int
    op_types: dict[str, int]
    resize_count: int
    resize_modes: tuple[str, ...]  # (mode, coordinate_transformation_mode) per Resize, joined
    has_range: bool
    input_names: tuple[str, ...]
    input_shape: tuple[Dim, ...] | None  # of the first (only) graph input
    input_elem_type: int
    output_shapes: dict[str, tuple[Dim, ...] | None]
    stem_channels: int | None  # first Conv's output channels (the variant's dims[0])
    final_conv_channels: int | None  # last Conv's output channels (18 * depth_dim)
    final_conv_hw: tuple[Dim, Dim] | None  # its spatial size, when inferred
    precision: str = "fp32"  # from the ops and initializers (graph_precision)
    # The size of the Resize fed by the final conv, when the conv was moved before the last
    # upsampling (converter.export.rewrite); None when the conv's output is the heatmap.
    upsampled_hw: tuple[Dim, Dim] | None = None
    # The op that makes each graph output (through Identity and Cast): a soft-argmax that
    # divides by its summed mass ends in Div (converter.export.rewrite), the literal one does not.
    output_ops: dict[str, str] = field(default_factory=dict)

    def divides_by_mass(self, output: str) -> bool:
        """Whether output comes out of a Div: the softmax sum's rounding cancels there."""
        return self.output_ops.get(output) == "Div"

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.input_shape) and not isinstance(self.input_shape[0], int)

    @property
    def heatmap_hw(self) -> tuple[Dim, Dim] | None:
        """The heatmap's spatial size: the final conv's, or its upsampled size."""
        return self.upsampled_hw if self.upsampled_hw is not None else self.final_conv_hw

    @property
    def resize_align_corners(self) -> bool:
        """Every Resize is bilinear with align_corners, as UpsamplingBilinear2d computes."""
        return all(m == "linear/align_corners" for m in self.resize_modes)

    def to_dict(self) -> dict[str, object]:
        return {
            "opset": self.opset,
            "nodes": self.node_count,
            "op_types": self.op_types,
            "resize_count": self.resize_count,
            "resize_modes": list(self.resize_modes),
            "has_range": self.has_range,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "output_shapes": {k: list(v) if v else None for k, v in self.output_shapes.items()},
            "stem_channels": self.stem_channels,
            "final_conv_channels": self.final_conv_channels,
            "final_conv_hw": list(self.final_conv_hw) if self.final_conv_hw else None,
            "heatmap_hw": list(self.heatmap_hw) if self.heatmap_hw else None,
            "precision": self.precision,
            "output_ops": self.output_ops,
        }


def _conv_out_channels(
    node: onnx.NodeProto,
    weights: dict[str, tuple[int, ...]],
    producers: dict[str, onnx.NodeProto],
) -> int | None:
    """The weight's first dimension; an int8 or fp16 graph's weight comes through DQ/Cast."""
    name = node.input[1] if len(node.input) > 1 else ""
    for _ in range(len(_PASSTHROUGH_OPS) + 1):
        source = producers.get(name)
        if name in weights or source is None or source.op_type not in _PASSTHROUGH_OPS:
            break
        name = source.input[0]
    shape = weights.get(name)
    return int(shape[0]) if shape else None


def _spatial(shape: tuple[Dim, ...] | None) -> tuple[Dim, Dim] | None:
    return (shape[2], shape[3]) if shape and len(shape) == 4 else None


# Ops that pass a tensor on without changing its layout (quantization pairs, precision casts).
_PASSTHROUGH_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Cast"})


def _resize_fed_by(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    """The Resize that reads tensor name, directly or through Q/DQ/Cast nodes, if any."""
    for _ in range(8):  # ours are at most Q -> DQ -> Cast; a bound, not a search
        readers = [n for n in graph.node if name in n.input]
        if len(readers) != 1:
            return None
        if readers[0].op_type == "Resize":
            return readers[0] if readers[0].input[0] == name else None
        if readers[0].op_type not in _PASSTHROUGH_OPS:
            return None
        name = readers[0].output[0]
    return None


def _text(value: object) -> str:
    """A string attribute as text for a report; a file's bytes need not be UTF-8 (or an attribute
    of that name a string at all): the contract then refuses the mode by name."""
    return value.decode(errors="replace") if isinstance(value, bytes) else repr(value)[:40]


def graph_facts(model: onnx.ModelProto) -> GraphFacts:
    """Facts of a model; pass a shape-inferred model to get intermediate sizes."""
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer}
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}
    # Constant nodes can hold weights too (some exporters emit them instead of initializers).
    for node in graph.node:
        value = node.attribute[0] if node.op_type == "Constant" and node.attribute else None
        if value is not None and value.name == "value" and node.output:
            # the declared dims, not the data: a tensor whose data is missing or cut is the
            # runtime's to refuse, and reading its shape must not decode (or allocate) it
            weights[node.output[0]] = tuple(int(d) for d in value.t.dims)
    shapes = {v.name: _dims(v.type) for v in (*graph.value_info, *graph.output, *graph.input)}
    inputs = [v for v in graph.input if v.name not in initializer_names]
    resize_modes = []
    for node in graph.node:
        if node.op_type == "Resize":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            mode = _text(attrs.get("mode", b"nearest"))
            ctm = _text(attrs.get("coordinate_transformation_mode", b"half_pixel"))
            resize_modes.append(f"{mode}/{ctm}")
    convs = [n for n in graph.node if n.op_type == "Conv"]
    final_hw = upsampled_hw = None
    if convs:
        final_hw = _spatial(shapes.get(convs[-1].output[0]))
        resize = _resize_fed_by(graph, convs[-1].output[0])
        if resize is not None:
            upsampled_hw = _spatial(shapes.get(resize.output[0]))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    output_ops = {}
    for output in graph.output:
        node = producers.get(output.name)
        for _ in range(8):  # a bound, not a search: ours end in the op itself
            if node is None or node.op_type not in ("Identity", "Cast") or not node.input:
                break
            node = producers.get(node.input[0])
        output_ops[output.name] = node.op_type if node is not None else "input"
    return GraphFacts(
        opset=int(opset),
        node_count=len(graph.node),
        op_types=dict(sorted(Counter(n.op_type for n in graph.node).items())),
        resize_count=len(resize_modes),
        resize_modes=tuple(resize_modes),
        has_range=any(n.op_type == "Range" for n in graph.node),
        input_names=tuple(v.name for v in inputs),
        input_shape=_dims(inputs[0].type) if inputs else None,
        input_elem_type=int(inputs[0].type.tensor_type.elem_type) if inputs else 0,
        output_shapes={v.name: _dims(v.type) for v in graph.output},
        stem_channels=_conv_out_channels(convs[0], weights, producers) if convs else None,
        final_conv_channels=_conv_out_channels(convs[-1], weights, producers) if convs else None,
        final_conv_hw=final_hw,
        precision=graph_precision(model),
        upsampled_hw=upsampled_hw,
        output_ops=output_ops,
    )


def variant_disagreements(facts: GraphFacts, spec: VariantSpec) -> list[str]:
    """Graph facts that contradict the variant (empty when the graph fits it)."""
    problems = []
    if facts.stem_channels is not None and facts.stem_channels != spec.dims[0]:
        problems.append(
            f"stem conv has {facts.stem_channels} channels, {spec.name} has {spec.dims[0]}"
        )
    if facts.final_conv_channels is not None and facts.final_conv_channels != spec.final_channels:
        problems.append(
            f"final conv has {facts.final_conv_channels} channels, {spec.name} has "
            f"{spec.final_channels} = {spec.joint_num} x depth_dim {spec.depth_dim}"
        )
    if facts.resize_count != spec.num_upsampling:
        problems.append(
            f"{facts.resize_count} Resize nodes, {spec.name} has {spec.num_upsampling} "
            "upsampling blocks"
        )
    hw = facts.heatmap_hw
    known = hw is not None and all(isinstance(d, int) for d in hw)
    if known and tuple(hw) != spec.heatmap_hw:  # type: ignore[arg-type]
        h, w = spec.heatmap_hw
        problems.append(f"heatmap is {format_shape(hw)}, {spec.name} has {h}x{w}")
    return problems


_QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "ConvInteger",
        "MatMulInteger",
    }
)
_HALF_TYPES = frozenset({onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16})
_INT8_TYPES = frozenset({onnx.TensorProto.INT8, onnx.TensorProto.UINT8})


def graph_precision(model: onnx.ModelProto) -> str:
    """fp32, fp16 or int8, read from the graph itself (never from its metadata).

    int8: any quantization op, or 8-bit integer initializers. fp16: half-precision initializers,
    constants or casts to half. Otherwise fp32. A graph can claim anything in its metadata_props;
    the tolerances follow what it really computes.
    """
    graph = model.graph
    if any(node.op_type in _QUANTIZED_OPS for node in graph.node):
        return "int8"
    initializer_types = {t.data_type for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    initializer_types.add(attribute.t.data_type)
    if initializer_types & _INT8_TYPES:
        return "int8"
    if initializer_types & _HALF_TYPES:
        return "fp16"
    for node in graph.node:
        if node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i in _HALF_TYPES:
                    return "fp16"
    return "fp32"
