"""Text fields of an ONNX graph that are not text.

Protobuf hands a string field whose bytes are not UTF-8 back as bytes (or raises when a runtime's
wrapper decodes it): every comparison, sort or print of names then trips on it. Both the graph
reader (graphs.metadata) and the runtimes' bounds (runtimes.graph_bounds) refuse such a file
before anything reads its names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import OnnxModelError

if TYPE_CHECKING:
    import onnx


def _dims(value) -> list[tuple[str, object]]:
    kind = value.type
    if not kind.HasField("tensor_type") or not kind.tensor_type.HasField("shape"):
        return []
    return [("a dimension's name", d.dim_param) for d in kind.tensor_type.shape.dim]


def first_undecoded_name(model: onnx.ModelProto) -> str | None:
    """What names the first string field that is not UTF-8 text, or None."""
    graph = model.graph
    fields: list[tuple[str, object]] = [("an opset domain", o.domain) for o in model.opset_import]
    for node in graph.node:
        fields += [("an operator", node.op_type), ("an operator domain", node.domain)]
        fields += [("a node name", node.name)]
        fields += [("an attribute name", attribute.name) for attribute in node.attribute]
        fields += [("a tensor name", name) for name in (*node.input, *node.output)]
    for value in (*graph.input, *graph.output, *graph.value_info):
        fields += [("a tensor name", value.name), *_dims(value)]
    fields += [("a tensor name", tensor.name) for tensor in graph.initializer]
    return next((what for what, text in fields if not isinstance(text, str)), None)


def check_graph_text(path: Path, model: onnx.ModelProto) -> None:
    """Refuse, in one line naming the file, a graph with a name that is not UTF-8 text."""
    undecoded = first_undecoded_name(model)
    if undecoded is not None:
        raise OnnxModelError(f"{path}: not a readable ONNX model ({undecoded} is not UTF-8 text)")
