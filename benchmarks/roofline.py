"""A CPU roofline for ConvNeXtPose: matrix peaks, each runtime/precision's share, per-op costs.

    python benchmarks/roofline.py --variants XS L --out /tmp/roofline

1. Peaks: one large MatMul (2048 x 2048 x 2048) compiled by OpenVINO in f32, in bf16, and in
   int8 (a QuantizeLinear/DequantizeLinear pair on both operands, which OpenVINO runs as an
   integer GEMM), on all cores; the fastest of 20 runs gives GFLOP/s (2 x M x N x K per run).
2. Per variant at batch 1, timed in the same rounds by converter.evaluation.bench (PyTorch eager
   fp32 and six graph/runtime contenders): median ms, the graph's conv MACs (counted from the
   graph's own shapes, so a rewritten graph counts what it really computes) and the achieved
   fraction of the peak of the precision the runtime really runs in.
3. The released XS through each path: MPJPE on the synthetic set and its change
   against PyTorch fp32 (the accuracy side of each speed).
4. onnxruntime's own profiler on the L graphs (literal and rewritten): time per op type.

Eager PyTorch is page-fault bound at larger batches under glibc's default malloc thresholds;
the script re-runs itself with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised (said in the
output) so the baseline is fair. Times drift on a shared machine; ratios within a round do not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import unverified_graph  # noqa: E402  (the sibling script)

from cnp_convert.checkpoints.canonical import random_checkpoint  # noqa: E402
from cnp_convert.checkpoints.released import load_released  # noqa: E402
from cnp_convert.core.complexity import conv_macs  # noqa: E402
from cnp_convert.core.model import build_model  # noqa: E402
from cnp_convert.core.variants import get_variant  # noqa: E402
from cnp_convert.evaluation.bench import BenchOptions, Contender, MachineInfo, benchmark  # noqa: E402
from cnp_convert.evaluation.evaluate import evaluate, onnx_backend, torch_backend  # noqa: E402
from cnp_convert.export.exporter import export_onnx  # noqa: E402
from cnp_convert.export.options import ExportOptions  # noqa: E402
from cnp_convert.h36m.dataset import load_dataset  # noqa: E402
from cnp_convert.h36m.synthetic import make_synthetic_h36m  # noqa: E402
from cnp_convert.runtimes.openvino_session import OpenVinoSession  # noqa: E402

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "1073741824",
    "MALLOC_TRIM_THRESHOLD_": "1073741824",
    # As the CLI does: spinning OpenMP threads made eager PyTorch 10-20x slower whenever another
    # process held a core of this 2-core machine.
    "OMP_WAIT_POLICY": "PASSIVE",
}
GEMM = 2048


# ---------------------------------------------------------------------------------------------
# 1. Peaks


def _gemm_graph(int8: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [GEMM, GEMM])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [GEMM, GEMM])
    b = rng.normal(size=(GEMM, GEMM)).astype(np.float32)
    if not int8:
        nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
        inits = [numpy_helper.from_array(b, "b")]
    else:
        scale = np.float32(4.0 / 127)
        inits = [
            numpy_helper.from_array(np.clip(np.round(b / scale), -127, 127).astype(np.int8), "bq"),
            numpy_helper.from_array(np.array(scale, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"]),
            helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["ad"]),
            helper.make_node("DequantizeLinear", ["bq", "s", "z"], ["bd"]),
            helper.make_node("MatMul", ["ad", "bd"], ["y"]),
        ]
    graph = helper.make_graph(nodes, "gemm", [a], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def matrix_peaks(directory: Path, threads: int | None, runs: int = 20) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of one large GEMM in OpenVINO, per precision."""
    peaks = {}
    a = np.random.default_rng(1).normal(size=(GEMM, GEMM)).astype(np.float32)
    for label, int8, hint in (
        ("fp32", False, "f32"),
        ("bf16", False, "bf16"),
        ("int8", True, "f32"),
    ):
        path = directory / f"gemm_{label}.onnx"
        onnx.save(_gemm_graph(int8), str(path))
        session = OpenVinoSession(path, threads=threads, precision=hint)
        for _ in range(3):
            session.run(a)
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            session.run(a)
            seconds.append(time.perf_counter() - started)
        # A peak is what the units can do: the fastest run, not the median (on a shared
        # machine most runs lose a core for a while).
        peaks[label] = 2 * GEMM**3 / min(seconds) / 1e9
    return peaks


# ---------------------------------------------------------------------------------------------
# 2. Contenders


def graph_macs(path: Path) -> int:
    """Multiply-accumulates of every Conv and MatMul, from the graph's inferred shapes."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    shapes = {}
    for value in (*graph.value_info, *graph.output, *graph.input):
        dims = [
            d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim
        ]
        shapes[value.name] = dims
    weights = {t.name: list(t.dims) for t in graph.initializer}
    # Q/DQ weights: the DequantizeLinear output has the initializer's shape
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    total = 0
    for node in graph.node:
        if node.op_type == "Conv":
            w = weights.get(node.input[1])
            out = shapes.get(node.output[0])
            if w and out:
                total += int(np.prod(out)) * int(np.prod(w[1:]))
    return total


def _graphs(variant: str, directory: Path) -> dict[str, Path]:
    """The graphs the contenders run: fp32 literal/rewritten (verified), int8 (see below)."""
    ckpt = random_checkpoint(get_variant(variant), seed=0)
    paths = {}
    for label, rewrites in (("fp32 literal", ()), ("fp32", None)):
        path = directory / f"{variant}_{label.replace(' ', '_')}.onnx"
        options = {} if rewrites is None else {"rewrites": rewrites}
        export_onnx(ckpt, path, ExportOptions(force=True, seed=7, **options))
        paths[label] = path
    # int8 of random weights fails its pose budget (they amplify every rounding): the graph is
    # built as export_onnx builds it, unverified, for timing; its accuracy is measured on the
    # released XS (part 3).
    paths["int8"] = unverified_graph(ckpt, "int8", directory / f"{variant}_int8.onnx")
    return paths


def contenders_table(
    variant: str, directory: Path, runs: int, threads: int | None
) -> tuple[list[dict], object]:
    graphs = _graphs(variant, directory)
    contenders = (
        Contender("onnxruntime fp32, literal graph", graphs["fp32 literal"]),
        Contender("onnxruntime int8", graphs["int8"]),
        Contender("OpenVINO f32", graphs["fp32"], "openvino", "f32"),
        Contender("OpenVINO default", graphs["fp32"], "openvino", "auto"),
        Contender("OpenVINO int8", graphs["int8"], "openvino", "auto"),
    )
    ckpt = random_checkpoint(get_variant(variant), seed=0)
    options = BenchOptions(batch=(1,), runs=runs, warmup=3, threads=threads)
    report = benchmark(graphs["fp32"], ckpt, options, contenders=contenders)
    (row,) = report.rows
    eager_macs = conv_macs(build_model(get_variant(variant)), get_variant(variant).input_hw)
    rows = [
        {
            "variant": variant,
            "path": "PyTorch eager fp32",
            "runs_in": "fp32",
            "ms": row.torch.median_ms,
            "gmacs": eager_macs / 1e9,
            "vs_eager": 1.0,
        },
        {
            "variant": variant,
            "path": "onnxruntime fp32, rewritten graph",
            "runs_in": "fp32",
            "ms": row.onnx.median_ms,
            "gmacs": graph_macs(graphs["fp32"]) / 1e9,
            "vs_eager": row.speedup,
        },
    ]
    for contender, timing in zip(contenders, row.others, strict=True):
        int8 = contender.path == graphs["int8"]
        runs_in = (
            "int8"
            if int8
            else {"f32": "fp32", "bf16": "bf16", None: "fp32"}.get(
                timing.execution_precision, timing.execution_precision
            )
        )
        rows.append(
            {
                "variant": variant,
                "path": contender.label
                + (
                    f" ({timing.execution_precision})"
                    if contender.runtime == "openvino"
                    and contender.ov_precision == "auto"
                    and not int8
                    else ""
                ),
                "runs_in": runs_in,
                "ms": timing.latency.median_ms,
                "gmacs": graph_macs(contender.path) / 1e9,
                "vs_eager": timing.speedup,
            }
        )
    return rows, report


# ---------------------------------------------------------------------------------------------
# 3. Accuracy of each path on the released XS


def released_accuracy(directory: Path) -> list[dict]:
    ckpt = load_released()
    fp32 = directory / "released_fp32.onnx"
    export_onnx(ckpt, fp32, ExportOptions(force=True, seed=7))
    int8 = directory / "released_int8.onnx"
    export_onnx(
        ckpt, int8, ExportOptions(force=True, seed=7, precision="int8")
    )  # verified: within budget
    data = make_synthetic_h36m(directory / "h36m", overwrite=True).root
    dataset = load_dataset(data)
    rows = []
    paths = (
        ("onnxruntime fp32, rewritten graph", fp32, "onnxruntime", "auto"),
        ("onnxruntime int8", int8, "onnxruntime", "auto"),
        ("OpenVINO f32", fp32, "openvino", "f32"),
        ("OpenVINO default", fp32, "openvino", "auto"),
        ("OpenVINO int8", int8, "openvino", "auto"),
    )
    for label, path, runtime, ov_precision in paths:
        backend = onnx_backend(path, "cpu", runtime=runtime, ov_precision=ov_precision)
        report = evaluate(
            dataset,
            [torch_backend(ckpt, "cpu"), backend],
            ckpt.spec,
            flip=False,  # the drawn figures colour left and right apart: a mirror is another figure
            progress=False,
            workers=0,
        )
        torch_mpjpe = report.backends[0].summary.total_mm
        mpjpe = report.backends[1].summary.total_mm
        rows.append(
            {
                "path": label,
                "providers": list(backend.providers),
                "mpjpe_mm": mpjpe,
                "torch_mpjpe_mm": torch_mpjpe,
                "change_mm": mpjpe - torch_mpjpe,
                "frames": report.frames,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# 4. onnxruntime's per-op profile


def op_profile(path: Path, runs: int = 10) -> list[tuple[str, float, float]]:
    """(op type, ms per run, share) from onnxruntime's profiler, biggest first."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    image = np.zeros((1, 3, 256, 256), np.float32)
    for _ in range(3 + runs):
        session.run(None, {"image": image})
    events = json.loads(Path(session.end_profiling()).read_text())
    node_events = [
        e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
    ]
    total_per_op: dict[str, float] = collections.Counter()
    for event in node_events:
        total_per_op[event["args"]["op_name"]] += event["dur"]
    calls = 3 + runs
    total = sum(total_per_op.values())
    return [
        (op, dur / calls / 1000, dur / total)
        for op, dur in sorted(total_per_op.items(), key=lambda item: -item[1])
    ]


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["XS", "L"])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="for every runtime and the peaks (default: all)"
    )
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    args.out.mkdir(parents=True, exist_ok=True)
    machine = MachineInfo.current()
    print(f"machine: {machine.line()}")
    print(
        "eager baseline: glibc MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ = 1 GiB, "
        "OMP_WAIT_POLICY=PASSIVE"
    )
    with tempfile.TemporaryDirectory() as tmp:
        peaks = matrix_peaks(Path(tmp), args.threads)
    print(
        f"\nmatrix peaks (OpenVINO, {GEMM}^3 GEMM, {args.threads or 'all'} threads): "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s, "
        f"bf16 {peaks['bf16']:.0f} GFLOP/s ({peaks['bf16'] / peaks['fp32']:.1f}x), "
        f"int8 {peaks['int8']:.0f} GOP/s ({peaks['int8'] / peaks['fp32']:.1f}x)"
    )
    results: dict[str, object] = {"machine": machine.line(), "peaks": peaks, "rows": []}
    print("\n| variant | path | runs in | ms (batch 1) | vs eager | GMACs | achieved | of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        rows, _ = contenders_table(variant, args.out, args.runs, args.threads)
        for r in rows:
            achieved = 2 * r["gmacs"] / (r["ms"] / 1000)
            r["achieved_gops"] = achieved
            r["of_peak"] = achieved / peaks[r["runs_in"]]
            print(
                f"| {r['variant']} | {r['path']} | {r['runs_in']} | {r['ms']:.1f} | "
                f"{r['vs_eager']:.1f}x | {r['gmacs']:.2f} | {achieved:.0f} GOP/s | "
                f"{100 * r['of_peak']:.0f} % |"
            )
        results["rows"].extend(rows)  # type: ignore[union-attr]
    if "L" in args.variants:
        for label in ("fp32_literal", "fp32"):
            profile = op_profile(args.out / f"L_{label}.onnx")
            results[f"profile_L_{label}"] = profile
            print(f"\nonnxruntime profile, L {label.replace('_', ' ')} (ms per run, share):")
            print("| op | ms | share |\n|---|---|---|")
            for op, ms, share in profile[:8]:
                print(f"| {op} | {ms:.2f} | {100 * share:.0f} % |")
    if not args.skip_accuracy:
        accuracy = released_accuracy(args.out)
        results["released"] = accuracy
        print("\nreleased XS, synthetic set, MPJPE (Protocol 2) and change vs PyTorch fp32:")
        print("| path | MPJPE mm | change mm |\n|---|---|---|")
        print(f"| PyTorch eager fp32 | {accuracy[0]['torch_mpjpe_mm']:.2f} | |")
        for r in accuracy:
            print(f"| {r['path']} | {r['mpjpe_mm']:.2f} | {r['change_mm']:+.3f} |")
    (args.out / "roofline.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
