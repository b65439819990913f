"""Coordinate error of fp16 and int8 graphs against the fp32 PyTorch model, every variant.

The figures behind converter.export.precision's default tolerances: for each variant and precision,
the worst and mean abs coords error (heatmap units) on the golden input, on verify's seeded
images and on the export check's images, with onnxruntime CPU; and, for fp16, PyTorch's own
half-precision run (fp16 activations as a GPU computes them; onnxruntime CPU has no fp16 kernels
and runs the fp16 graph in fp32 with fp16-rounded weights). Run: python benchmarks/precision.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converter.checkpoints.canonical import build_loaded_model, random_checkpoint  # noqa: E402
from converter.checkpoints.fabricate import normalize_images, seeded_images  # noqa: E402
from converter.core.variants import VARIANTS, VariantSpec, get_variant  # noqa: E402
from converter.export.exporter import PARITY_SEED, export_onnx  # noqa: E402
from converter.export.precision import HalfPrecisionPose, calibration_set  # noqa: E402
from converter.runtimes.sessions import open_onnx_session  # noqa: E402
from converter.verdicts.tolerances import PRECISION_ATOL, PRECISION_MEAN_ATOL  # noqa: E402
from converter.verdicts.verify import DEFAULT_SAMPLES, VERIFY_SEED  # noqa: E402

GOLDEN = ROOT / "golden"


def _inputs(spec: VariantSpec) -> dict[str, np.ndarray]:
    """The golden image, verify's seeded images and the export check's images, normalized."""
    with np.load(GOLDEN / "input_image.npz", allow_pickle=False) as data:
        golden = data["image_rgb"].astype(np.float32)
    verify = seeded_images(DEFAULT_SAMPLES, VERIFY_SEED, spec.input_hw)
    export = seeded_images(2, PARITY_SEED + 1, spec.input_hw)
    return {
        name: normalize_images(images, spec)
        for name, images in (("golden", golden), ("verify", verify), ("export", export))
    }


def _errors(reference: np.ndarray, candidate: np.ndarray) -> str:
    diff = np.abs(candidate - reference)
    return f"max {diff.max():7.4f} mean {diff.mean():7.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args(argv)
    print("coords error against PyTorch fp32, heatmap units (onnxruntime CPU unless noted)")
    for precision in ("fp16", "int8"):
        mean = PRECISION_MEAN_ATOL[precision].get("coords")
        print(
            f"  default tolerance {precision} (per 32 bins): "
            f"max {PRECISION_ATOL[precision]['coords']:g}"
            + (f", mean {mean:g}" if mean is not None else "")
        )
    with tempfile.TemporaryDirectory(prefix="cnp-precision-") as tmp:
        for name in args.variants:
            spec = get_variant(name)
            ckpt = random_checkpoint(spec, seed=0)
            model = build_loaded_model(ckpt)
            inputs = _inputs(spec)
            with torch.inference_mode():
                reference = {k: model(torch.from_numpy(x)).numpy() for k, x in inputs.items()}
                half = HalfPrecisionPose(model).eval()
                torch_half = {k: half(torch.from_numpy(x)).numpy() for k, x in inputs.items()}
            calibration = calibration_set(spec)
            for precision in ("fp16", "int8"):
                started = time.perf_counter()
                path = Path(tmp) / f"{name}_{precision}.onnx"
                export_onnx(
                    ckpt,
                    path,
                    precision=precision,
                    calibration=calibration if precision == "int8" else None,
                    atol={"coords": 1e3},  # measure, do not judge
                )
                seconds = time.perf_counter() - started
                session = open_onnx_session(path, "cpu")
                for label, x in inputs.items():
                    out = session.run(x)["coords"]
                    print(
                        f"{name:>2} {precision} {label:6s} {_errors(reference[label], out)}"
                        + (f"  (export {seconds:.1f} s)" if label == "golden" else "")
                    )
                if precision == "fp16":
                    for label in inputs:
                        err = _errors(reference[label], torch_half[label])
                        print(f"{name:>2} fp16 {label:6s} {err}  (PyTorch CPU half)")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
