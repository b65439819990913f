"""The two torch.onnx exporters on the same weights: time, operators, verdict.

Per variant, the same seeded random weights are exported by the TorchScript exporter (the
default while torch ships it) and by the dynamo exporter (torch.export), alternately, rounds
times each; every export passes the fp32 verdict (else it is not written). Printed: median export
seconds (tracing to ONNX proto) and whole export_onnx seconds, and whether both graphs hold the
same operators (Constant nodes aside: the TorchScript exporter keeps a few shape constants as
nodes, the dynamo exporter as initializers).

    python benchmarks/exporters.py --variants XS L --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
from pathlib import Path

import onnx
import torch

from cnp_convert.checkpoints.canonical import random_checkpoint
from cnp_convert.core.variants import get_variant
from cnp_convert.export.options import EXPORTERS, ExportOptions, export_onnx


def operators(path: Path) -> collections.Counter[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return collections.Counter(n.op_type for n in graph.node if n.op_type != "Constant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["XS", "L"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| variant | exporter | export s (median) | export_onnx s (median) | error / limit |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            ckpt = random_checkpoint(get_variant(name), seed=0)
            export_s: dict[str, list[float]] = {e: [] for e in EXPORTERS}
            total_s: dict[str, list[float]] = {e: [] for e in EXPORTERS}
            margin: dict[str, float] = {}
            ops: dict[str, collections.Counter[str]] = {}
            for _ in range(args.rounds):
                for exporter in EXPORTERS:
                    path = Path(tmp) / f"{name}_{exporter}.onnx"
                    report = export_onnx(
                        ckpt, path, ExportOptions(exporter=exporter, force=True, seed=7)
                    )
                    export_s[exporter].append(report.export_seconds)
                    total_s[exporter].append(report.seconds)
                    worst = max(
                        (o for p in report.parity for o in p.outputs), key=lambda o: o.error
                    )
                    margin[exporter] = worst.error / worst.limit
                    ops[exporter] = operators(path)
            for exporter in EXPORTERS:
                print(
                    f"| {name} | {exporter} | {statistics.median(export_s[exporter]):.2f} | "
                    f"{statistics.median(total_s[exporter]):.2f} | {margin[exporter]:.2f} |"
                )
            same = "the same operators" if len(set(map(str, ops.values()))) == 1 else "DIFFERENT"
            print(f"| {name} | both | | | {same}: {dict(sorted(ops[EXPORTERS[0]].items()))} |")
    print(f"{args.rounds} alternating rounds, torch {torch.__version__}, 1 torch thread")


if __name__ == "__main__":
    main()
