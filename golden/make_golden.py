"""Write the golden input and the expected coords of every variant.

- golden/input_image.npz: one seeded RGB image, uint8 (1, 256, 256, 3), shared by all variants
  (uint8 is what a camera gives, and it keeps the file small).
- golden/coords_<V>.npz: the PyTorch CPU fp32 coords (1, 18, 3) of ConvNeXtPose-<V> with
  fabricate.seeded_state_dict(spec, seed=0) on that image, with the tolerances that apply.

Plain arrays only (np.savez_compressed, read with allow_pickle=False). Run with `just golden`
and review the diff before committing; never edit the files by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cnp_convert.checkpoints.fabricate import seeded_state_dict
from cnp_convert.core.model import build_model
from cnp_convert.core.variants import VARIANTS, get_variant
from cnp_convert.h36m.preprocess import normalize_images, seeded_images

GOLDEN_DIR = Path(__file__).resolve().parent
INPUT_FILE = "input_image.npz"
IMAGE_SEED = 7
WEIGHTS_SEED = 0
# PyTorch against its own golden (other CPUs may pick other kernels), and any ONNX Runtime
# build against it (the export tolerance, heatmap units).
ATOL_TORCH = 1e-4
ATOL_ONNX = 2e-3


def coords_file(variant: str) -> str:
    return f"coords_{get_variant(variant).name}.npz"


def golden_image(seed: int = IMAGE_SEED) -> np.ndarray:
    """(1, 256, 256, 3) uint8 RGB: fabricate's seeded image, rounded."""
    return np.rint(seeded_images(1, seed)).astype(np.uint8)


def torch_coords(variant: str, image_rgb: np.ndarray) -> np.ndarray:
    """fp32 PyTorch CPU coords of the variant with seeded weights on image_rgb (N,H,W,3)."""
    spec = get_variant(variant)
    model = build_model(spec)
    model.load_state_dict(seeded_state_dict(spec, seed=WEIGHTS_SEED), strict=True)
    with torch.inference_mode():
        x = torch.from_numpy(normalize_images(image_rgb.astype(np.float32), spec))
        return model.eval()(x).numpy()


def write_input(directory: Path = GOLDEN_DIR) -> Path:
    path = directory / INPUT_FILE
    np.savez_compressed(path, image_rgb=golden_image(), seed=np.int64(IMAGE_SEED))
    return path


def write_coords(variant: str, directory: Path = GOLDEN_DIR) -> Path:
    spec = get_variant(variant)
    with np.load(directory / INPUT_FILE, allow_pickle=False) as data:
        image = data["image_rgb"]
    path = directory / coords_file(spec.name)
    np.savez_compressed(
        path,
        coords=torch_coords(spec.name, image),
        variant=np.str_(spec.name),
        weights_seed=np.int64(WEIGHTS_SEED),
        heatmap_hw=np.asarray(spec.heatmap_hw, dtype=np.int64),
        depth_dim=np.int64(spec.depth_dim),
        atol_torch=np.float64(ATOL_TORCH),
        atol_onnx=np.float64(ATOL_ONNX),
        torch_version=np.str_(torch.__version__),
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="default: all")
    parser.add_argument("--dir", type=Path, default=GOLDEN_DIR, help="output directory")
    args = parser.parse_args(argv)
    print(f"wrote {write_input(args.dir)}")
    for variant in args.variants:
        print(f"wrote {write_coords(variant, args.dir)}")


if __name__ == "__main__":
    main()
