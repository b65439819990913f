"""Speed and accuracy figures on this machine: `just bench` (python benchmarks/bench.py).

For each variant (XS and L by default) and precision (fp32, fp16, int8), with the seeded weights:
the export time; onnxruntime and PyTorch eager latency at each batch size, interleaved in one
run, and their ratio; and for fp16/int8 the cost against fp32: coords error on the golden input
(against the PyTorch fp32 golden file) and on verify's seeded images, and the MPJPE change
against the fp32 graph on the synthetic Human3.6M set (flip test, protocol 2). Figures, printed;
nothing is asserted. --device cuda --batch 1,32 --precisions fp32,fp16 gives the GPU table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converter.checkpoints.canonical import build_loaded_model, random_checkpoint  # noqa: E402
from converter.checkpoints.fabricate import normalize_images, seeded_images  # noqa: E402
from converter.core.variants import VariantSpec, get_variant  # noqa: E402
from converter.evaluation.precision_cost import compare_onnx_precisions  # noqa: E402
from converter.export.exporter import export_onnx  # noqa: E402
from converter.export.precision import HalfPrecisionPose, calibration_set  # noqa: E402
from converter.verdicts.bench import DEFAULT_RUNS, BenchReport, MachineInfo, benchmark  # noqa: E402
from converter.verdicts.runtime import open_onnx_session  # noqa: E402
from converter.verdicts.tolerances import PRECISIONS  # noqa: E402
from converter.verdicts.verify import DEFAULT_SAMPLES, VERIFY_SEED  # noqa: E402

GOLDEN = ROOT / "golden"


@dataclass(frozen=True)
class Accuracy:
    golden_max: float  # heatmap units, against golden/coords_<V>.npz (PyTorch fp32)
    verify_max: float  # against PyTorch fp32 on verify's seeded images
    verify_mean: float
    fp16_arithmetic_golden_max: float | None  # fp16: PyTorch half, as a GPU computes it
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


def _golden(spec: VariantSpec) -> tuple[np.ndarray, np.ndarray]:
    with np.load(GOLDEN / "input_image.npz", allow_pickle=False) as data:
        image = normalize_images(data["image_rgb"].astype(np.float32), spec)
    with np.load(GOLDEN / f"coords_{spec.name}.npz", allow_pickle=False) as data:
        return image, data["coords"]


def _accuracy(spec: VariantSpec, model, path: Path, fp32_path: Path, precision: str) -> Accuracy:
    session = open_onnx_session(path, "cpu")
    image, golden = _golden(spec)
    images = normalize_images(seeded_images(DEFAULT_SAMPLES, VERIFY_SEED, spec.input_hw), spec)
    with torch.inference_mode():
        reference = model(torch.from_numpy(images)).numpy()
        half = None
        if precision == "fp16":
            half = HalfPrecisionPose(model).eval()(torch.from_numpy(image)).numpy()
    diff = np.abs(session.run(images)["coords"] - reference)
    change = compare_onnx_precisions(fp32_path, path)
    return Accuracy(
        golden_max=float(np.abs(session.run(image)["coords"] - golden).max()),
        verify_max=float(diff.max()),
        verify_mean=float(diff.mean()),
        fp16_arithmetic_golden_max=float(np.abs(half - golden).max()) if half is not None else None,
        mpjpe_fp32_mm=change.comparison.values_mm[0],
        mpjpe_mm=change.comparison.values_mm[1],
        mpjpe_change_mm=change.change_mm,
        mean_joint_move_mm=change.comparison.mean_distance_mm,
    )


def run(args: argparse.Namespace) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnp-bench-") as tmp:
        for name in args.variants:
            spec = get_variant(name)
            ckpt = random_checkpoint(spec, seed=0)
            model = build_loaded_model(ckpt)
            fp32_path = None
            for precision in args.precisions:
                path = Path(tmp) / f"{spec.name}_{precision}.onnx"
                calibration = calibration_set(spec) if precision == "int8" else None
                report = export_onnx(ckpt, path, precision=precision, calibration=calibration)
                if precision == "fp32":
                    fp32_path = path
                bench = benchmark(
                    path,
                    ckpt,
                    device=args.device,
                    batches=args.batch,
                    threads=args.threads,
                    runs=args.runs,
                    export_seconds=report.seconds,
                )
                accuracy = None
                if precision != "fp32" and fp32_path is not None:
                    accuracy = _accuracy(spec, model, path, fp32_path, precision)
                row = Row(spec.name, precision, report.seconds, bench, accuracy)
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
        half = (
            f", fp16 arithmetic (PyTorch half) {a.fp16_arithmetic_golden_max:.4f}"
            if a.fp16_arithmetic_golden_max is not None
            else ""
        )
        print(
            f"   {row.precision} vs fp32: coords golden max {a.golden_max:.4f}{half}; verify "
            f"images max {a.verify_max:.4f} mean {a.verify_mean:.4f} (heatmap units); MPJPE "
            f"{a.mpjpe_mm:.2f} vs {a.mpjpe_fp32_mm:.2f} mm, change {a.mpjpe_change_mm:+.3f} mm, "
            f"joints move {a.mean_joint_move_mm:.1f} mm on average",
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
            f"{args.device}; seeded weights; ratio = onnxruntime / PyTorch eager (fp32)"
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
