"""The released XS on the shipped photos against labels by eye (the photos as network inputs:
test_photos_small.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from converter.checkpoints.canonical import build_loaded_model
from converter.checkpoints.released import load_released
from converter.core.variants import get_variant
from converter.h36m.photos import augmented_patch, photo_paths
from converter.h36m.preprocess import normalize_patch, read_bgr

XS = get_variant("XS")
LABELS = Path(__file__).parents[1] / "data" / "photo_joints.json"
# Labels by eye are good to a few pixels; the released XS lands within 15 px of them (mean 7)
# on these two photos. A head's height is ~30 px here: a joint farther than that is wrong.
MAX_PX, MEAN_PX = 24.0, 12.0


def _joint_errors(divide_by_255: bool = False) -> np.ndarray:
    labels = json.loads(LABELS.read_text())
    model = build_loaded_model(load_released())
    errors = []
    for path in photo_paths():
        if path.name not in labels:
            continue
        picture = read_bgr(path)
        patch = augmented_patch(picture, XS.input_hw)
        image = normalize_patch(patch, XS)
        if divide_by_255:  # the classic mistake: the released weights expect no division
            image = normalize_patch((patch / 255.0).astype(np.float32), XS)
        with torch.no_grad():
            coords = model(torch.from_numpy(image[None]))[0].numpy()
        pixels = coords[:, :2] * np.array(picture.shape[1::-1]) / np.array(XS.heatmap_hw[::-1])
        for name, (x, y) in labels[path.name].items():
            errors.append(np.hypot(*(pixels[XS.joint_names.index(name)] - (x, y))))
    return np.array(errors)


@pytest.fixture(scope="module")
def released_errors() -> np.ndarray:
    return _joint_errors()


def test_the_released_xs_finds_the_labelled_joints(released_errors: np.ndarray) -> None:
    assert len(released_errors) == 10
    assert released_errors.max() < MAX_PX and released_errors.mean() < MEAN_PX


def test_the_same_check_refuses_a_wrong_normalization() -> None:
    errors = _joint_errors(divide_by_255=True)
    assert errors.max() > MAX_PX and errors.mean() > MEAN_PX
