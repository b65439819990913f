"""What a graph may hold before any runtime is asked to run it.

A ConvNeXtPose graph is a straight line of standard operators. Control flow (Loop, If, Scan, and
any node carrying a subgraph) can make a run last forever: a Loop with trip count 2^62 keeps
onnxruntime inside native code, where no Python signal handler runs. Operators from other
domains run code this tool never checked. Both are refused by reading the graph, before a
session exists.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from converter.core.errors import OnnxModelError

CONTROL_FLOW_OPS = frozenset({"Loop", "If", "Scan", "SequenceMap"})
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
_SUBGRAPH_KINDS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def unbounded_constructs(model: onnx.ModelProto) -> list[str]:
    """What in the model a verdict must not run: control flow, custom-domain operators, local
    functions (which could hide either)."""
    problems = [f"{len(model.functions)} local function(s)"] if model.functions else []
    for node in model.graph.node:
        if node.op_type in CONTROL_FLOW_OPS or any(
            a.type in _SUBGRAPH_KINDS for a in node.attribute
        ):
            problems.append(f"control flow ({node.op_type} node {node.name[:80]!r})")
        elif node.domain not in STANDARD_DOMAINS:
            problems.append(
                f"an operator from another domain ({node.domain[:80]}.{node.op_type[:80]})"
            )
    return problems


def check_bounded_graph(path: Path) -> None:
    """Refuse, in one line, a graph file holding what unbounded_constructs finds."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: the runtime would fail too
        raise OnnxModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    problems = unbounded_constructs(model)
    if problems:
        raise OnnxModelError(
            f"{path}: holds {problems[0]}"
            + (f" and {len(problems) - 1} more" if len(problems) > 1 else "")
            + "; a ConvNeXtPose graph has none, and such a graph may run without end: "
            "refused before it runs"
        )
