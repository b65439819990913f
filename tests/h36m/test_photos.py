"""The shipped photos as network inputs, and the released XS on them against labels by eye."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from converter.checkpoints.canonical import build_loaded_model
from converter.checkpoints.released import load_released
from converter.core.variants import get_variant
from converter.h36m.photos import (
    AUGMENTATIONS,
    augmented_patch,
    augmented_transform,
    photo_crops,
    photo_paths,
    random_photo_inputs,
)
from converter.h36m.preprocess import normalize_patch, read_bgr

XS = get_variant("XS")
LABELS = Path(__file__).parents[1] / "data" / "photo_joints.json"
# Labels by eye are good to a few pixels; the released XS lands within 15 px of them (mean 7)
# on these two photos. A head's height is ~30 px here: a joint farther than that is wrong.
MAX_PX, MEAN_PX = 24.0, 12.0


def test_the_photos_are_the_official_sample_crops() -> None:
    pictures = [read_bgr(p) for p in photo_paths()]
    assert [p.shape for p in pictures] == [(256, 256, 3)] * 3 + [(225, 225, 3)]
    crops = photo_crops(XS)
    assert len(crops) == 4 * 2 * len(AUGMENTATIONS) == 56 and crops.images.shape[1:] == (
        3,
        256,
        256,
    )
    # One heatmap unit is the same number of mm on every axis: the box spans 2000 mm.
    assert np.allclose(crops.root_depths * 256 / crops.focals[:, 0], 2000.0)
    assert not crops.drawn


def test_the_augmented_crop_maps_like_opencv_rotation() -> None:
    """The training crop (scale, rotation about the box centre) against OpenCV's own rotation
    matrix for the same turn and zoom, an independent construction."""
    matrix = augmented_transform((0.0, 0.0, 200.0, 200.0), (256, 256), 1.25, 30.0)
    # The reference turns its source points by +rotation (rotate_2d: x cos - y sin, x sin +
    # y cos), so source -> patch is OpenCV's rotation by the same angle about the box centre,
    # with zoom 256 / (200 * 1.25), then the centre moved to the patch centre.
    expected = cv2.getRotationMatrix2D((100.0, 100.0), 30.0, 256 / 250)
    expected[:, 2] += np.array([128.0, 128.0]) - np.array([100.0, 100.0])
    assert np.allclose(matrix, expected, atol=1e-4)


def test_a_mirrored_identity_crop_is_the_mirror_image() -> None:
    picture = read_bgr(photo_paths()[0])
    plain = augmented_patch(picture, (256, 256))
    mirrored = augmented_patch(picture, (256, 256), mirror=True)
    assert np.array_equal(plain, picture) and np.array_equal(mirrored, picture[:, ::-1])


def test_random_inputs_follow_their_seed() -> None:
    first, again = random_photo_inputs(XS, 6, 3), random_photo_inputs(XS, 6, 3)
    assert np.array_equal(first, again) and not np.array_equal(first, random_photo_inputs(XS, 6, 4))


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
