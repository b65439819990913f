"""Golden coords: PyTorch and ONNX Runtime against files written by golden/make_golden.py.

The weights are fabricate.seeded_state_dict(spec, seed=0), which is also what the fabricated
releases hold, so the release checkpoints and their exports are reused here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from converter.checkpoints.canonical import build_loaded_model
from converter.core.variants import VARIANTS, get_variant
from converter.h36m.preprocess import normalize_images
from converter.runtimes.sessions import open_onnx_session

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
REGENERATE = "`just golden` (python golden/make_golden.py), then review the diff"


def load_golden(name: str, directory: Path = GOLDEN) -> dict[str, np.ndarray]:
    path = directory / name
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing; regenerate it with {REGENERATE}")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _checkpoint(onnx_cache, variant: str):
    # XS and L releases are fabricated by other tests anyway; S and M come straight from seeds.
    if variant in ("XS", "L"):
        return onnx_cache.release_checkpoint(variant)
    return onnx_cache.seeded_checkpoint(variant, 0)


def _golden_input(variant: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    image = load_golden("input_image.npz")["image_rgb"]
    expected = load_golden(f"coords_{variant}.npz")
    assert str(expected["variant"]) == variant
    assert int(expected["weights_seed"]) == 0
    x = normalize_images(image.astype(np.float32), get_variant(variant))
    return x, expected


def test_missing_golden_file_says_how_to_regenerate(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="just golden"):
        load_golden("coords_XS.npz", tmp_path)


def test_golden_input_is_plain_uint8() -> None:
    image = load_golden("input_image.npz")["image_rgb"]
    assert image.dtype == np.uint8 and image.shape == (1, 256, 256, 3)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pytorch_matches_golden(onnx_cache, variant: str) -> None:
    x, expected = _golden_input(variant)
    model = build_loaded_model(_checkpoint(onnx_cache, variant))
    with torch.inference_mode():
        coords = model(torch.from_numpy(x)).numpy()
    assert coords.shape == expected["coords"].shape == (1, 18, 3)
    worst = float(np.abs(coords - expected["coords"]).max())
    assert worst <= float(expected["atol_torch"]), f"{variant}: {worst:.3g}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnxruntime_matches_golden(onnx_cache, variant: str) -> None:
    x, expected = _golden_input(variant)
    path, _ = onnx_cache.exported(_checkpoint(onnx_cache, variant))
    coords = open_onnx_session(path, "cpu").run(x)["coords"]
    worst = float(np.abs(coords - expected["coords"]).max())
    assert worst <= float(expected["atol_onnx"]), f"{variant}: {worst:.3g}"
