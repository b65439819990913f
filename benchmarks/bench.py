"""Speed and accuracy figures on this machine: `just bench` (python benchmarks/bench.py).

For each variant (XS and L by default) and precision (fp32, fp16, int8): XS with the authors'
released weights, the others with seeded (random) weights. The export time; onnxruntime and
PyTorch eager latency at each batch size, interleaved in one run, and their ratio; and for
fp16/int8 the cost against fp32: the verdict's pose change (mean / p95 / worst per-joint mm
against PyTorch fp32 on the 93 synthetic crops) and the MPJPE change against the fp32 graph on the
synthetic Human3.6M set
(protocol 2, no flip: the drawn figures are not mirror-symmetric). A graph the verdict refuses
(int8 of random weights) is still timed, built the same way without the verdict, and marked.
Figures, printed; nothing is asserted. --device cuda --batch 1,32 --precisions fp32,fp16 gives
the GPU table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnp_convert.checkpoints.canonical import (  # noqa: E402
    CanonicalCheckpoint,
    build_loaded_model,
    random_checkpoint,
)
from cnp_convert.checkpoints.released import RELEASED_VARIANT, load_released  # noqa: E402
from cnp_convert.core.variants import VariantSpec, get_variant  # noqa: E402
from cnp_convert.evaluation.bench import (  # noqa: E402
    DEFAULT_RUNS,
    BenchOptions,
    BenchReport,
    MachineInfo,
    benchmark,
)
from cnp_convert.evaluation.precision_cost import compare_onnx_precisions  # noqa: E402
from cnp_convert.export.exporter import build_graph, export_onnx  # noqa: E402
from cnp_convert.export.options import ExportOptions  # noqa: E402
from cnp_convert.export.precision import calibration_set  # noqa: E402
from cnp_convert.h36m.synthetic import evaluated_frames, synthetic_crops  # noqa: E402
from cnp_convert.runtimes.sessions import open_onnx_session  # noqa: E402
from cnp_convert.verdicts.judge import ParityFailedError, run_pose_verdict  # noqa: E402
from cnp_convert.verdicts.tolerances import POSE_BUDGETS, PRECISIONS  # noqa: E402


@dataclass(frozen=True)
class Accuracy:
    weights: str  # "released (the authors')" or "seeded (random)"
    pose_change: dict  # the verdict's PoseChange.to_dict() on every synthetic crop
    mpjpe_fp32_mm: float
    mpjpe_mm: float
    mpjpe_change_mm: float
    mean_joint_move_mm: float


@dataclass(frozen=True)
class Row:
    variant: str
    precision: str
    export_seconds: float
    bench: BenchReport
    accuracy: Accuracy | None
    verdict: str  # "pass", or why the graph would not be kept


def unverified_graph(
    ckpt: CanonicalCheckpoint, precision: str, path: Path, metadata_from: Path | None = None
) -> Path:
    """The fp16/int8 graph export_onnx would build (its build_graph stage), without the verdict,
    to time or measure a graph the verdict refuses. metadata_from: a graph of the same weights
    whose metadata is copied (with this precision), so the evaluation can pair the two."""
    proto = build_graph(ckpt, ExportOptions(precision=precision)).proto
    if metadata_from is not None:
        del proto.metadata_props[:]
        for prop in onnx.load(str(metadata_from), load_external_data=False).metadata_props:
            entry = proto.metadata_props.add()
            same = prop.key != "precision"  # metadata values are JSON (cnp-onnx/2)
            entry.key, entry.value = prop.key, prop.value if same else json.dumps(precision)
    onnx.save(proto, str(path))
    return path


def _accuracy(ckpt, model, path: Path, fp32_path: Path, precision: str, label: str) -> Accuracy:
    spec = ckpt.spec
    session = open_onnx_session(path, "cpu")
    crops = synthetic_crops(spec, len(evaluated_frames()), 0)
    change = run_pose_verdict(
        model, session, crops, 8, precision=precision, budget=POSE_BUDGETS[precision],
        torch_device=torch.device("cpu"), spec=spec,
    )  # fmt: skip
    mpjpe = compare_onnx_precisions(fp32_path, path, flip=False)
    return Accuracy(
        weights=label,
        pose_change=change.to_dict(),
        mpjpe_fp32_mm=mpjpe.comparison.values_mm[0],
        mpjpe_mm=mpjpe.comparison.values_mm[1],
        mpjpe_change_mm=mpjpe.change_mm,
        mean_joint_move_mm=mpjpe.comparison.mean_distance_mm,
    )


def _weights(spec: VariantSpec) -> tuple[CanonicalCheckpoint, str]:
    if spec.name == RELEASED_VARIANT:
        return load_released(), "released (the authors')"
    return random_checkpoint(spec, seed=0), "seeded (random)"


def run(args: argparse.Namespace) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnp-bench-") as tmp:
        for name in args.variants:
            spec = get_variant(name)
            ckpt, label = _weights(spec)
            model = build_loaded_model(ckpt)
            fp32_path = None
            for precision in args.precisions:
                path = Path(tmp) / f"{spec.name}_{precision}.onnx"
                calibration = calibration_set(spec) if precision == "int8" else None
                started = time.perf_counter()
                verdict = "pass"
                try:
                    export_onnx(
                        ckpt, path, ExportOptions(precision=precision, calibration=calibration)
                    )
                except ParityFailedError as exc:
                    verdict = f"refused by the verdict ({exc})"
                    unverified_graph(ckpt, precision, path, metadata_from=fp32_path)
                export_seconds = time.perf_counter() - started
                if precision == "fp32":
                    fp32_path = path
                bench = benchmark(
                    path,
                    ckpt,
                    BenchOptions(
                        device=args.device, batch=args.batch, threads=args.threads, runs=args.runs
                    ),
                    export_seconds=export_seconds,
                )
                accuracy = None
                if precision != "fp32" and fp32_path is not None:
                    accuracy = _accuracy(ckpt, model, path, fp32_path, precision, label)
                row = Row(spec.name, precision, export_seconds, bench, accuracy, verdict)
                rows.append(row)
                if not args.json:
                    _print_row(row)
    return rows


def _print_row(row: Row) -> None:
    for r in row.bench.rows:
        print(
            f"{row.variant:>2} {row.precision:4s} {row.export_seconds:7.1f} {r.batch:>5} "
            f"{r.torch.median_ms:>9.2f} {r.onnx.median_ms:>9.2f} "
            f"{r.ratio_onnx_over_torch:>10.3f} {r.speedup:>7.2f}x",
            flush=True,
        )
    a = row.accuracy
    if a is not None:
        pose = a.pose_change
        print(
            f"   {row.precision} vs fp32 ({a.weights}): pose change mean {pose['mean_mm']:.2f} / "
            f"p95 {pose['p95_mm']:.2f} / worst {pose['worst_mm']:.1f} mm; MPJPE "
            f"{a.mpjpe_mm:.2f} vs {a.mpjpe_fp32_mm:.2f} mm, change {a.mpjpe_change_mm:+.3f} mm; "
            f"verdict: {row.verdict}",
            flush=True,
        )


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=["XS", "L"])
    parser.add_argument("--precisions", type=lambda t: tuple(t.split(",")), default=PRECISIONS)
    parser.add_argument("--batch", type=_sizes, default=(1, 8), help="e.g. 1,8")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    if args.precisions and args.precisions[0] != "fp32" and len(args.precisions) > 1:
        parser.error("list fp32 first: the other precisions are compared against it")
    machine = MachineInfo.current()
    if not args.json:
        print(f"machine: {machine.line()}")
        print(
            f"{args.runs} interleaved runs per backend and batch (medians), onnxruntime on "
            f"{args.device}; XS: the released weights, others: seeded weights; "
            "ratio = onnxruntime / PyTorch eager (fp32)"
        )
        print(
            f"{'V':>2} {'prec':4s} {'export s':>7} {'batch':>5} {'torch ms':>9} {'onnx ms':>9} "
            f"{'onnx/torch':>10} {'speedup':>8}"
        )
    rows = run(args)
    if args.json:
        json.dump(
            {"machine": asdict(machine), "rows": [asdict(r) for r in rows]}, sys.stdout, indent=2
        )
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
