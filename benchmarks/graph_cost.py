"""What ConvNeXtPose graphs cost by their shapes, and how fast each operator family really runs
per costed operation on onnxruntime CPU: the data runtimes.graph_cost's limits and weight and
runtimes.watched's default time limit rest on (not a test; a few minutes of CPU).

    python benchmarks/graph_cost.py variants
    python benchmarks/graph_cost.py operators

variants: every variant's default, literal (--no-rewrite), fp16, int8 and --heatmaps --no-fold
graph (random weights: the cost depends on shapes only), its peak of live tensors and its work
at batch 1, 2 and 256, and at batch 1 and 8 its real time on onnxruntime CPU per costed
operation (ns/op).
operators: chains of one operator on 8 x 1024 x 1024 float tensors (contractions on matrices or
images), timed on their second run: ns per costed operation. An operator far slower per
operation than the others is one whose cost the shapes understate; the time limit (a base plus
RUN_LIMIT_PER_OPERATION_S per operation) bounds it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnp_convert.checkpoints.canonical import random_checkpoint
from cnp_convert.core.variants import VARIANTS, get_variant
from cnp_convert.export.exporter import build_graph
from cnp_convert.export.options import ExportOptions
from cnp_convert.runtimes.graph_cost import graph_cost_of, shapes_only

SHAPE = (1, 8, 1024, 1024)


def _seconds(proto: onnx.ModelProto, shape: tuple[int, ...]) -> float:
    """The second run's wall time (the first allocates), on onnxruntime CPU, default threads."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(proto.SerializeToString(), options, ["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.rand(*shape).astype(np.float32)}
    session.run(None, feed)
    started = time.perf_counter()
    session.run(None, feed)
    return time.perf_counter() - started


def variants() -> None:
    print("| variant | graph | peak MiB (batch 1 / 2 / 256) | G operations (1 / 2 / 256) "
          "| ns/op at batch 1 | at batch 8 |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    forms = {
        "default": ExportOptions(),
        "literal": ExportOptions(rewrites=()),
        "fp16": ExportOptions(precision="fp16"),
        "int8": ExportOptions(precision="int8"),
        "heatmaps, BatchNorms kept": ExportOptions(heatmaps=True, fold=False),
    }
    for name in VARIANTS:
        ckpt = random_checkpoint(get_variant(name), 0)
        for form, options in forms.items():
            proto = build_graph(ckpt, options).proto
            model = shapes_only(proto)
            costs = [graph_cost_of(model, (b, 3, 256, 256)) for b in (1, 2, 256)]
            speed = []
            for batch in (1, 8):
                work = graph_cost_of(model, (batch, 3, 256, 256)).operations
                speed.append(_seconds(proto, (batch, 3, 256, 256)) / work * 1e9)
            peaks = " / ".join(f"{c.peak_bytes / 2**20:.1f}" for c in costs)
            works = " / ".join(f"{c.operations / 1e9:.2f}" for c in costs)
            print(f"| {name} | {form} | {peaks} | {works} | {speed[0]:.3f} | {speed[1]:.3f} |",
                  flush=True)  # fmt: skip


def _chain(op: str, count: int, extra: onnx.TensorProto | None = None, **attributes):
    nodes, previous = [], "x"
    for step in range(count):
        out = "y" if step == count - 1 else f"t{step}"
        inputs = [previous, *([extra.name] if extra is not None else [])]
        nodes.append(helper.make_node(op, inputs, [out], **attributes))
        previous = out
    graph = helper.make_graph(
        nodes, op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [extra] if extra is not None else [],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def _filled(name: str, shape: list[int], value: float) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, shape, np.full(shape, value).ravel())


def _resize(mode: str) -> onnx.ModelProto:
    """Up by 2 and back down, 5 times."""
    model = _chain("Identity", 1)
    nodes, previous = [], "x"
    for step in range(10):
        out = "y" if step == 9 else f"t{step}"
        scales = "up" if step % 2 == 0 else "down"
        nodes.append(helper.make_node("Resize", [previous, "", scales], [out], mode=mode))
        previous = out
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend([
        helper.make_tensor("up", TensorProto.FLOAT, [4], [1, 1, 2, 2]),
        helper.make_tensor("down", TensorProto.FLOAT, [4], [1, 1, 0.5, 0.5]),
    ])  # fmt: skip
    return model


# fmt: off
UNARY_OPS = (
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Celu", "Cos", "Cosh", "Elu",
    "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Log", "Mish", "Neg",
    "Reciprocal", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
    "Softsign", "Tan", "Tanh", "ThresholdedRelu", "LogSoftmax", "Hardmax",
)
# fmt: on
BINARY_OPS = ("Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Sum", "Mean")


def _axes(axis: int) -> onnx.TensorProto:
    return helper.make_tensor("axes", TensorProto.INT64, [1], [axis])


def operators() -> None:
    one = _filled("one", [1], 1.0)
    cases = {
        "MatMul 1024 x 1024": _chain("MatMul", 20, _filled("w", [1024, 1024], 1 / 1024)),
        "Conv 8 -> 8, 7 x 7": _chain("Conv", 10, _filled("w", [8, 8, 7, 7], 1 / 392),
                                     pads=[3, 3, 3, 3]),
        "Conv depthwise 31 x 31": _chain("Conv", 10, _filled("w", [8, 1, 31, 31], 1 / 961),
                                         pads=[15] * 4, group=8),
        "MaxPool 31 x 31": _chain("MaxPool", 10, kernel_shape=[31, 31], pads=[15] * 4),
        "AveragePool 31 x 31": _chain("AveragePool", 10, kernel_shape=[31, 31], pads=[15] * 4),
        "Add (a scalar)": _chain("Add", 40, one),
        "Relu": _chain("Relu", 40),
        "Exp": _chain("Exp", 40),
        "Erf": _chain("Erf", 40),
        "Sqrt": _chain("Sqrt", 40),
        "Softmax, last axis": _chain("Softmax", 20, axis=-1),
        "Softmax, axis 1 (8 channels)": _chain("Softmax", 20, axis=1),
        "CumSum": _chain("CumSum", 10, helper.make_tensor("axis", TensorProto.INT64, [], [3])),
        "LayerNormalization": _chain("LayerNormalization", 10, _filled("s", [1024], 1.0)),
        "Resize linear x2 and back": _resize("linear"),
        "Resize cubic x2 and back": _resize("cubic"),
        "Resize nearest x2 and back": _resize("nearest"),
    }  # fmt: skip
    for op in UNARY_OPS:
        cases[op] = _chain(op, 10)
    for op in BINARY_OPS:
        cases[f"{op} (a scalar)"] = _chain(op, 10, _filled("half", [1], 0.5))
    for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceLogSumExp"):
        for axis in (1, 3):
            cases[f"{op}, axis {axis}"] = _chain(op, 1, _axes(axis))
    print("| operator | G operations | seconds | ns/op |")
    print("|---|---|---|---|")
    for name, model in cases.items():
        try:
            work = graph_cost_of(shapes_only(model), SHAPE).operations
            seconds = _seconds(model, SHAPE)
        except Exception as exc:  # not in opset 18 (Gelu)
            print(f"| {name} | ({type(exc).__name__}) | | |")
            continue
        print(f"| {name} | {work / 1e9:.2f} | {seconds:.3f} | {seconds / work * 1e9:.3f} |",
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["variants", "operators"])
    args = parser.parse_args()
    {"variants": variants, "operators": operators}[args.what]()


if __name__ == "__main__":
    main()
