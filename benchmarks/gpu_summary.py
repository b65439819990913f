"""One markdown summary of a gpu_check.sh output folder (its JSON reports), for the docs."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main(folder: Path) -> None:
    doctor = _load(folder / "doctor.json") or {}
    gpus = ", ".join(doctor.get("gpus") or ["no GPU"])
    print(
        f"GPU check: {gpus}; PyTorch {doctor.get('torch')} (CUDA {doctor.get('torch_cuda')}); "
        f"onnxruntime {doctor.get('onnxruntime')} (CUDA {doctor.get('onnxruntime_cuda')})\n"
    )
    print("| variant | precision | verify | seed | error vs float64 (or pose change) | limit |")
    print("|---|---|---|---|---|---|")
    for path in sorted(folder.glob("verify_*.json")):
        report = _load(path)
        name = path.stem.removeprefix("verify_")
        if report is None:
            print(f"| {name} | | no report | | | |")
            continue
        if report.get("results"):
            coords = [o for r in report["results"] for o in r["outputs"] if o["name"] == "coords"]
            worst = max(coords, key=lambda o: o["error"])
            figure, limit = (
                f"{worst['error']:.3g} (floor {worst['floor']:.3g})",
                f"{worst['limit']:.3g}",
            )
        else:
            change = max(report["pose_change"], key=lambda c: c["mean_mm"])
            figure = f"mean {change['mean_mm']:.2f} mm, worst {change['worst_mm']:.1f} mm"
            limit = f"budget mean {change['budget']['mean_mm']:g} mm"
        verdict = "PASS" if report["passed"] else "FAIL"
        print(f"| {report['variant']} | {report['precision']} | {verdict} on "
              f"{report['onnx_device']} | {report['seed']} | {figure} | {limit} |")  # fmt: skip
    print("\n| bench | batch | PyTorch ms | onnxruntime ms | speed-up | providers |")
    print("|---|---|---|---|---|---|")
    for path in sorted(folder.glob("bench_*.json")):
        report = _load(path)
        if report is None:
            print(f"| {path.stem} | | no report | | | |")
            continue
        for row in report["rows"]:
            torch_ms, onnx_ms = row["torch"]["median_ms"], row["onnx"]["median_ms"]
            name = f"{report['variant']} {report['precision']}"
            providers = ", ".join(report["providers"])
            print(
                f"| {name} | {row['batch']} | {torch_ms:.2f} | {onnx_ms:.2f} | "
                f"{torch_ms / onnx_ms:.2f}x | {providers} |"
            )
    evaluation = _load(folder / "eval_XS.json")
    if evaluation is not None:
        print(f"\neval (XS released): {json.dumps(evaluation.get('comparison'))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
