"""What a graph may hold before any runtime is asked to run it.

A ConvNeXtPose graph is a straight line of standard operators. Control flow (Loop, If, Scan, and
any node carrying a subgraph) can make a run last forever: a Loop with trip count 2^62 keeps
onnxruntime inside native code, where no Python signal handler runs. Operators from other
domains run code this tool never checked. Both are refused by reading the graph, before a
session exists; so is a graph whose run would need more memory or work than the limits allow
(runtimes.graph_cost), at the shape each run feeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx

from ..core.errors import OnnxModelError
from ..core.graph_text import check_graph_text
from .graph_cost import GraphCost, check_graph_cost, fed_input, shapes_only

CONTROL_FLOW_OPS = frozenset({"Loop", "If", "Scan", "SequenceMap"})
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
_SUBGRAPH_KINDS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
# What the tool feeds a ConvNeXtPose graph (every variant's input is 256 x 256): the shape a
# graph's cost is first read at, for dims the graph leaves open.
FIRST_FEED = (1, 3, 256, 256)


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


class BoundedGraph:
    """A graph file that holds nothing unbounded, with its cost at each input shape checked
    against the limits (once per shape: a session runs many batches of one size)."""

    def __init__(self, path: Path, model: onnx.ModelProto) -> None:
        self.path = path
        self._declared_outputs = {
            o.name: tuple(
                d.dim_value if d.HasField("dim_value") else None
                for d in o.type.tensor_type.shape.dim
            )
            if o.type.tensor_type.HasField("shape")
            else None
            for o in model.graph.output
        }
        self._model = shapes_only(model)  # no shape taken from the file
        self._costs: dict[tuple[int, ...], GraphCost] = {}

    def cost(self, input_shape: Sequence[int]) -> GraphCost:
        """The checked cost of a run fed input_shape; OnnxModelError naming the file when over
        a limit or not knowable before the run."""
        shape = tuple(int(d) for d in input_shape)
        if shape not in self._costs:
            try:
                self._costs[shape] = check_graph_cost(self._model, shape)
            except OnnxModelError as exc:
                message = f"{self.path}: at input {list(shape)}, {exc.message}"
                raise OnnxModelError(message) from None
        return self._costs[shape]

    def declared_input(self) -> tuple[str, tuple[int | str | None, ...]]:
        """The fed input's name and declared dims (a symbol's name or None where open), for a
        runtime that does not report them (OpenCV, LiteRT); OnnxModelError naming the file."""
        try:
            value = fed_input(self._model)
        except OnnxModelError as exc:
            raise OnnxModelError(f"{self.path}: {exc.message}") from None
        dims = value.type.tensor_type.shape.dim
        return value.name, tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims
        )

    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self._model.graph.output)

    def declared_outputs(self) -> dict[str, tuple[int | None, ...] | None]:
        """Each output's declared dims (None where open; None for an output declared without a
        shape), for a runtime whose outputs are matched to the graph's by position (LiteRT)."""
        return dict(self._declared_outputs)

    def first_feed(self) -> tuple[int, ...]:
        """The input's declared dims, with those it leaves open taken from FIRST_FEED."""
        try:
            dims = fed_input(self._model).type.tensor_type.shape.dim
        except OnnxModelError:
            return FIRST_FEED  # the cost check names what is wrong
        if len(dims) != len(FIRST_FEED):
            return FIRST_FEED  # the cost check names what is wrong
        return tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else default
            for d, default in zip(dims, FIRST_FEED, strict=True)
        )


def check_bounded_graph(path: Path) -> BoundedGraph:
    """Refuse, in one line, a graph file holding what unbounded_constructs finds, or one whose
    run at its first feed (batch 1 where the batch is open) is over the cost limits: a runtime
    folds constants when it loads a graph, so a constant too large is refused before that."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: the runtime would fail too
        raise OnnxModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    check_graph_text(path, model)  # a runtime's wrapper raises when it decodes such a name
    problems = unbounded_constructs(model)
    if problems:
        raise OnnxModelError(
            f"{path}: holds {problems[0]}"
            + (f" and {len(problems) - 1} more" if len(problems) > 1 else "")
            + "; a ConvNeXtPose graph has none, and such a graph may run without end: "
            "refused before it runs"
        )
    bounded = BoundedGraph(path, model)
    bounded.cost(bounded.first_feed())
    return bounded
