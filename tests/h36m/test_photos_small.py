"""The shipped photos as network inputs, without running a model: the augmented crop matrix
against the rotation and scaling written out by hand and against OpenCV's (a point turned about
the box centre lands on the patch centre plus its offset scaled by the patch-to-box ratio), the
patches, the fixed crops and the seeded random draws."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

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


@pytest.mark.parametrize(("scale", "rotation_deg"), [(1.0, 0.0), (0.8, 30.0), (1.2, -15.0)])
def test_the_crop_matrix_turns_and_scales_about_the_box_centre(
    scale: float, rotation_deg: float
) -> None:
    box = (10.0, 20.0, 40.0, 60.0)  # centre (30, 50); not square, so x and y cannot swap
    out_h, out_w = 32, 24
    matrix = augmented_transform(box, (out_h, out_w), scale, rotation_deg)
    angle = math.radians(rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    for dx, dy in [(0.0, 0.0), (7.0, 0.0), (0.0, -5.0), (3.0, 4.0)]:
        source = np.array([30.0 + dx * cos - dy * sin, 50.0 + dx * sin + dy * cos, 1.0])
        expected = [
            0.5 * out_w + dx * out_w / (40 * scale),
            0.5 * out_h + dy * out_h / (60 * scale),
        ]
        np.testing.assert_allclose(matrix @ source, expected, atol=1e-4)


PICTURE = np.random.default_rng(0).integers(0, 255, size=(6, 8, 3), dtype=np.uint8)


def test_the_default_patch_of_a_picture_its_own_size_is_the_picture() -> None:
    assert np.array_equal(augmented_patch(PICTURE, (6, 8)), PICTURE)


def test_a_mirrored_patch_is_the_picture_flipped_left_to_right() -> None:
    assert np.array_equal(augmented_patch(PICTURE, (6, 8), mirror=True), PICTURE[:, ::-1])


def test_a_zoomed_out_patch_is_black_around_the_picture() -> None:
    # Scale 2: the 8 x 8 box becomes 16 x 16, so the picture fills the middle 4 x 4 of the patch.
    white = np.full((8, 8, 3), 255, np.uint8)
    patch = augmented_patch(white, (8, 8), scale=2.0)
    assert np.array_equal(patch[0, 0], [0, 0, 0]) and np.array_equal(patch[7, 7], [0, 0, 0])
    assert np.array_equal(patch[4, 4], [255, 255, 255])


def test_the_fixed_photo_crops_in_order_with_one_box_and_camera() -> None:
    spec = XS
    pictures = [read_bgr(p) for p in photo_paths()]  # the official sample crops
    assert [p.shape for p in pictures] == [(256, 256, 3)] * 3 + [(225, 225, 3)]
    crops = photo_crops(spec)
    count = 4 * 2 * len(AUGMENTATIONS)
    assert len(crops) == count == 56 and not crops.drawn
    side = spec.input_hw[1]
    assert np.array_equal(crops.boxes, np.tile([0.0, 0.0, side, side], (count, 1)))
    # The root depth at which a box `side` pixels wide, seen at focal 1500 px, spans 2000 mm.
    assert np.allclose(crops.root_depths, np.full(count, 2000.0 * 1500.0 / side))
    assert np.array_equal(crops.focals, np.full((count, 2), 1500.0))
    assert np.array_equal(crops.centers, np.full((count, 2), side / 2.0))
    picture = read_bgr(photo_paths()[0])
    assert picture.shape[:2] == spec.input_hw  # the first photo fills the box as it is
    # Photo 0 as is, then mirrored; within each, AUGMENTATIONS in order. OpenCV's own rotation
    # matrix about the centre, zoom 1 / scale, stands for the crop.
    centre = (side / 2.0, side / 2.0)
    for index, flipped in [(0, picture), (len(AUGMENTATIONS), picture[:, ::-1])]:
        for offset, (scale, rotation) in enumerate(AUGMENTATIONS):
            matrix = cv2.getRotationMatrix2D(centre, rotation, 1.0 / scale)
            patch = cv2.warpAffine(np.ascontiguousarray(flipped), matrix, (side, side))
            expected = normalize_patch(patch, spec)
            difference = np.abs(crops.images[index + offset] - expected)
            assert difference.mean() < 0.01 * np.abs(expected).mean(), (index, offset)


def test_random_inputs_are_the_reference_training_draws() -> None:
    """The draws written out again in the order the docstring gives them (scale, whether to
    rotate, rotation, mirror, colour gain per crop), the crop built with OpenCV's rotation."""
    spec = XS
    side = spec.input_hw[1]
    # Five crops: the fifth is the first photo again; seed 0 draws scales past both clips, a
    # mirror, rotated and unrotated crops.
    count, seed = 5, 0
    rng = np.random.default_rng(seed)
    pictures = [read_bgr(path) for path in photo_paths()]
    drawn = []
    for index in range(count):
        picture = pictures[index % 4]
        scale = min(max(rng.normal(1.0, 0.25), 0.75), 1.25)
        rotation = min(max(rng.normal(0.0, 30.0), -60.0), 60.0) if rng.random() < 0.6 else 0.0
        if rng.random() < 0.5:
            picture = picture[:, ::-1]
        gain = rng.uniform(0.8, 1.2, size=3)
        drawn.append((scale, rotation, picture, gain))
    inputs = random_photo_inputs(spec, count, seed)
    assert inputs.shape == (count, 3, *spec.input_hw)
    for image, (scale, rotation, picture, gain) in zip(inputs, drawn, strict=True):
        width = picture.shape[1]
        matrix = cv2.getRotationMatrix2D((width / 2, width / 2), rotation, side / (width * scale))
        matrix[:, 2] += side / 2 - width / 2
        patch = cv2.warpAffine(np.ascontiguousarray(picture), matrix, (side, side))
        patch = np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        expected = normalize_patch(patch, spec)
        assert np.abs(image - expected).mean() < 0.01 * np.abs(expected).mean()


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


def test_another_seed_draws_other_inputs() -> None:
    assert not np.array_equal(random_photo_inputs(XS, 6, 3), random_photo_inputs(XS, 6, 4))
