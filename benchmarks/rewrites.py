"""Each head rewrite's effect: verdict and onnxruntime CPU latency, old graph vs rewritten.

Per variant, four graphs are exported with the same seeded random weights (the rewrites do not
depend on the weights): no rewrite, each rewrite alone, both. Every export passes the fp32
verdict (else it is not written). Then one onnxruntime session per graph is timed at batch 1,
interleaved (graph A, B, C, D, A, B, ...) so that drift on this shared machine hits them alike;
each timed run follows an untimed one. Medians and ratios to the literal graph are printed as a
Markdown table.

With --stages, onnxruntime's profiler then times the literal graph and the rewritten one ("both")
in the same process, in alternating blocks of runs, and prints where each one's time goes: the
backbone, the head blocks, the final conv, and the heatmap volume's ops by type (their sum, the
volume's "tail", is what the rewrites change).

    python benchmarks/rewrites.py --variants L M XS --runs 15 --out /tmp/rewrites
    python benchmarks/rewrites.py --variants M --stages --out /tmp/rewrites
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from cnp_convert.checkpoints.canonical import random_checkpoint
from cnp_convert.core.variants import get_variant
from cnp_convert.export.exporter import export_onnx
from cnp_convert.export.options import ExportOptions
from cnp_convert.export.rewrite import FINAL_CONV_BEFORE_UPSAMPLE, REWRITES, SOFT_ARGMAX_MOMENTS
from cnp_convert.h36m.preprocess import normalize_images, seeded_images
from cnp_convert.runtimes.sessions import open_onnx_session

CONFIGS = {
    "literal": (),
    "final conv first": (FINAL_CONV_BEFORE_UPSAMPLE,),
    "soft-argmax by moments": (SOFT_ARGMAX_MOMENTS,),
    "both": REWRITES,
}


def stage_of(node_name: str, op_type: str) -> str:
    """The part of the model an onnxruntime node belongs to, from its exported scope name.

    Everything after the head blocks but the final conv is the tail (the volume's upsampling,
    softmax, moments, and the NCHWc reorders onnxruntime adds); a form that computes the final
    conv as a MatMul counts it in the tail too.
    """
    if "/backbone/" in node_name:
        return "backbone"
    if "final_layer" in node_name:
        return "final conv"
    if "/head/" in node_name and "/head/upsample1/" not in node_name:
        return "head blocks"  # the rewritten head's upsample1 is the volume's (the tail)
    if node_name.startswith("Reorder"):  # NCHWc <-> NCHW copies the NCHWc transformer added
        return "tail: NCHWc reorder"
    return f"tail: {op_type}"


def stage_profile(
    paths: dict[str, Path], image: np.ndarray, threads: int | None, rounds: int = 4
) -> dict[str, dict[str, float]]:
    """ms per run of each stage, per graph; profiled in one process in alternating blocks."""
    sessions = {}
    for label, path in paths.items():
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        sessions[label] = ort.InferenceSession(str(path), options, ["CPUExecutionProvider"])
    block = 10
    for _ in range(rounds):
        for session in sessions.values():
            for _ in range(block):
                session.run(None, {"image": image})
    stages: dict[str, dict[str, float]] = {}
    for label, session in sessions.items():
        events = json.loads(Path(session.end_profiling()).read_text())
        per_stage: dict[str, float] = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                name = event["name"].removesuffix("_kernel_time")
                per_stage[stage_of(name, event["args"]["op_name"])] += event["dur"]
        stages[label] = {k: v / (rounds * block) / 1000 for k, v in per_stage.items()}
    return stages


def print_stages(variant: str, stages: dict[str, dict[str, float]]) -> None:
    labels = list(stages)
    names = sorted(
        {k for per in stages.values() for k in per}, key=lambda k: (k.startswith("tail"), k)
    )
    print(f"\nonnxruntime profile, {variant} (ms per run, both graphs in one process):")
    print("| stage | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for name in names:
        row = " | ".join(f"{stages[label].get(name, 0.0):.2f}" for label in labels)
        print(f"| {name} | {row} |")
    for part, test in (("tail", lambda k: k.startswith("tail")), ("total", lambda k: True)):
        row = " | ".join(
            f"{sum(v for k, v in stages[label].items() if test(k)):.2f}" for label in labels
        )
        print(f"| **{part}** | {row} |")
    totals = {label: sum(stages[label].values()) for label in labels}
    for label in labels[1:]:
        print(f"profiled ratio {label} / {labels[0]}: {totals[label] / totals[labels[0]]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["L", "M"])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7, help="verdict inputs")
    parser.add_argument("--stages", action="store_true", help="also profile literal vs both")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the exports and verdicts; the timing is onnxruntime's own threads
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.variants:
        spec = get_variant(name)
        ckpt = random_checkpoint(spec, seed=0)
        graphs = {}
        for label, rewrites in CONFIGS.items():
            path = args.out / f"{spec.name}_{label.replace(' ', '_')}.onnx"
            report = export_onnx(
                ckpt,
                path,
                ExportOptions(rewrites=rewrites, force=True, seed=args.seed, simplify=True),
            )
            if rewrites and not report.rewrites.applied:
                continue  # not applicable to this variant (XS/S have no final upsampling)
            coords = report.parity[0].outputs[0]
            graphs[label] = (path, report, coords)
        image = normalize_images(seeded_images(1, args.seed, spec.input_hw), spec)
        sessions = {
            label: open_onnx_session(path, "cpu", args.threads, spinning=False)
            for label, (path, _, _) in graphs.items()
        }
        seconds: dict[str, list[float]] = {label: [] for label in sessions}
        for _ in range(args.runs):
            for label, session in sessions.items():
                session.run(image)  # untimed: absorbs the previous graph's thread spin-down
                started = time.perf_counter()
                session.run(image)
                seconds[label].append(time.perf_counter() - started)
        base = statistics.median(seconds["literal"])
        for label, (_, report, coords) in graphs.items():
            median = statistics.median(seconds[label])
            results.append(
                {
                    "variant": spec.name,
                    "graph": label,
                    "rewrites": list(report.rewrites.applied),
                    "median_ms": round(1000 * median, 2),
                    "ratio": round(median / base, 3),
                    "coords_error": max(p.outputs[0].error for p in report.parity),
                    "coords_limit": coords.limit,
                    "floor": coords.floor,
                    "passed": report.passed,
                    "nodes": report.graph.node_count,
                }
            )
        if args.stages:
            chosen = {label: graphs[label][0] for label in ("literal", "both")}
            stages = stage_profile(chosen, image, args.threads)
            print_stages(spec.name, stages)
            results.append({"variant": spec.name, "stages": stages})
    (args.out / "rewrites.json").write_text(json.dumps(results, indent=2))
    print("| variant | graph | median ms (batch 1) | vs literal | coords error | limit | nodes |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "stages" in r:
            continue
        print(
            f"| {r['variant']} | {r['graph']} | {r['median_ms']:.2f} | {r['ratio']:.2f}x | "
            f"{r['coords_error']:.2e} | {r['coords_limit']:.2e} | {r['nodes']} |"
        )
    print(f"onnxruntime CPU, {args.runs} interleaved runs, threads {args.threads or 'default'}")


if __name__ == "__main__":
    main()
