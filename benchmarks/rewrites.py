"""Each head rewrite's effect: verdict and onnxruntime CPU latency, old graph vs rewritten.

Per variant, four graphs are exported with the same seeded random weights (the rewrites do not
depend on the weights): no rewrite, each rewrite alone, both. Every export passes the fp32
verdict (else it is not written). Then one onnxruntime session per graph is timed at batch 1,
interleaved (graph A, B, C, D, A, B, ...) so that drift on this shared machine hits them alike;
each timed run follows an untimed one. Medians and ratios to the literal graph are printed as a
Markdown table.

    python benchmarks/rewrites.py --variants L M XS --runs 15 --out /tmp/rewrites
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from converter.checkpoints.canonical import random_checkpoint
from converter.checkpoints.fabricate import normalize_images, seeded_images
from converter.core.variants import get_variant
from converter.export.exporter import export_onnx
from converter.export.rewrite import FINAL_CONV_BEFORE_UPSAMPLE, REWRITES, SOFT_ARGMAX_MOMENTS
from converter.verdicts.runtime import open_onnx_session

CONFIGS = {
    "literal": (),
    "final conv first": (FINAL_CONV_BEFORE_UPSAMPLE,),
    "soft-argmax by moments": (SOFT_ARGMAX_MOMENTS,),
    "both": REWRITES,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["L", "M"])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7, help="verdict inputs")
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
                ckpt, path, rewrites=rewrites, force=True, seed=args.seed, simplify=True
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
    (args.out / "rewrites.json").write_text(json.dumps(results, indent=2))
    print("| variant | graph | median ms (batch 1) | vs literal | coords error | limit | nodes |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['variant']} | {r['graph']} | {r['median_ms']:.2f} | {r['ratio']:.2f}x | "
            f"{r['coords_error']:.2e} | {r['coords_limit']:.2e} | {r['nodes']} |"
        )
    print(f"onnxruntime CPU, {args.runs} interleaved runs, threads {args.threads or 'default'}")


if __name__ == "__main__":
    main()
