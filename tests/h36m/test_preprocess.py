"""Preprocessing: EXIF-blind BGR read, the box (process_bbox), the affine crop, RGB order, no
division by 255."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from converter.core.errors import DatasetError
from converter.core.variants import get_variant
from converter.h36m.preprocess import (
    crop_patch,
    crop_transform,
    load_input,
    normalize_images,
    normalize_patch,
    process_bbox,
    read_bgr,
    seeded_images,
)

SPEC = get_variant("XS")


def _apply(matrix: np.ndarray, point: tuple[float, float]) -> np.ndarray:
    return matrix @ np.array([point[0], point[1], 1.0])


def test_crop_transform_maps_the_box_onto_the_patch() -> None:
    bbox = (100.0, 50.0, 300.0, 300.0)
    matrix = crop_transform(bbox, (256, 256))
    np.testing.assert_allclose(_apply(matrix, (250.0, 200.0)), (128.0, 128.0), atol=1e-4)
    np.testing.assert_allclose(_apply(matrix, (100.0, 50.0)), (0.0, 0.0), atol=1e-4)
    np.testing.assert_allclose(_apply(matrix, (400.0, 350.0)), (256.0, 256.0), atol=1e-4)


def test_crop_at_scale_one_is_a_plain_slice_and_the_border_is_black() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(400, 500, 3), dtype=np.uint8)
    # a 256 box at integer offsets maps pixel centres onto pixel centres: no interpolation
    patch = crop_patch(image, (37.0, 61.0, 256.0, 256.0), (256, 256))
    np.testing.assert_array_equal(patch, image[61 : 61 + 256, 37 : 37 + 256])
    # a box hanging off the top-left corner: the outside is constant 0
    patch = crop_patch(image, (-100.0, -100.0, 256.0, 256.0), (256, 256))
    assert not patch[:99, :99].any()
    np.testing.assert_array_equal(patch[100:, 100:], image[: 256 - 100, : 256 - 100])


def test_crop_scales_bilinearly() -> None:
    # a horizontal ramp doubled in size stays a ramp with half the slope (bilinear, not nearest)
    ramp = np.tile(np.arange(0, 256, 2, dtype=np.uint8)[None, :, None], (128, 1, 3))
    patch = crop_patch(ramp, (0.0, 0.0, 128.0, 128.0), (256, 256))
    row = patch[128, 10:200, 0].astype(int)
    assert set(np.diff(row)) <= {0, 1, 2} and (np.diff(row) == 1).mean() > 0.8


def test_normalize_is_rgb_without_division_by_255() -> None:
    patch = np.zeros((256, 256, 3), dtype=np.uint8)
    patch[..., 0], patch[..., 1], patch[..., 2] = 10, 20, 30  # B, G, R
    out = normalize_patch(patch, SPEC)
    assert out.shape == (3, 256, 256) and out.dtype == np.float32
    mean, std = SPEC.pixel_mean, SPEC.pixel_std
    expected = [(30 - mean[0]) / std[0], (20 - mean[1]) / std[1], (10 - mean[2]) / std[2]]
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-6)


def _jpeg_with_exif_orientation(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose APP1 Exif block says 'rotate by orientation' (6 = 90° clockwise)."""
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    data = encoded.tobytes()
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + app1 + data[2:]


def test_read_ignores_exif_orientation(tmp_path: Path) -> None:
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    image[:, :50] = (255, 0, 0)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_jpeg_with_exif_orientation(image, 6))
    if cv2.imread(str(path), cv2.IMREAD_COLOR).shape[:2] != (100, 60):
        pytest.skip("this OpenCV build does not apply EXIF orientation, nothing to ignore")
    assert read_bgr(path).shape == (60, 100, 3)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"broken\.jpg: not a PNG, JPEG, BMP or WebP image"):
        read_bgr(path)
    with pytest.raises(DatasetError, match=r"missing\.jpg"):
        load_input(tmp_path / "missing.jpg", (0, 0, 10, 10), SPEC)


def test_load_input_matches_the_steps(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(300, 320, 3), dtype=np.uint8)
    path = tmp_path / "x.png"  # lossless, so the file holds exactly these pixels
    cv2.imwrite(str(path), image)
    bbox = (20.5, 10.25, 150.0, 150.0)
    expected = normalize_patch(crop_patch(image, bbox, (256, 256)), SPEC)
    np.testing.assert_array_equal(load_input(path, bbox, SPEC), expected)


def test_seeded_images_are_smooth_bounded_and_fixed_by_their_seed() -> None:
    images = seeded_images(3, 7, (20, 30))
    assert images.shape == (3, 20, 30, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0
    assert np.array_equal(images, seeded_images(3, 7, (20, 30)))
    assert not np.array_equal(images, seeded_images(3, 8, (20, 30)))
    # low-frequency blobs plus grain of std 12: neighbours differ by far less than the range
    steps = np.abs(np.diff(seeded_images(2, 1, (256, 256)), axis=2))
    assert 5.0 < float(steps.mean()) < 30.0 and float(images.std()) > 30.0


def test_normalize_images_by_hand() -> None:
    spec = get_variant("XS")
    rgb = np.zeros((1, 2, 2, 3), np.float32)
    rgb[0, 1, 0] = (255.0, 0.0, 10.0)
    out = normalize_images(rgb, spec)
    assert out.shape == (1, 3, 2, 2) and out.dtype == np.float32 and out.flags.c_contiguous
    mean, std = spec.pixel_mean, spec.pixel_std
    for channel, value in enumerate((255.0, 0.0, 10.0)):  # no division by 255 first
        assert out[0, channel, 1, 0] == pytest.approx((value - mean[channel]) / std[channel])
        assert out[0, channel, 0, 0] == pytest.approx(-mean[channel] / std[channel])


def _seeded_by_loops(count: int, seed: int, h: int, w: int) -> np.ndarray:
    """The seeded images' recipe written out pixel by pixel: a 9 x 9 grid of uniform values in
    0..255 per channel, bilinear over the image (grid spacing 8 / (side - 1)), plus N(0, 12)
    grain, clipped to 0..255; the grid is drawn first, then the grain."""
    rng = np.random.default_rng(seed)
    grid = rng.uniform(0.0, 255.0, size=(count, 3, 9, 9))
    grain = rng.normal(0.0, 12.0, size=(count, 3, h, w))
    out = np.zeros((count, h, w, 3))
    for n in range(count):
        for c in range(3):
            for i in range(h):
                gy = 8.0 * i / (h - 1)
                y0 = min(int(gy), 7)
                fy = gy - y0
                for j in range(w):
                    gx = 8.0 * j / (w - 1)
                    x0 = min(int(gx), 7)
                    fx = gx - x0
                    g = grid[n, c]
                    top = g[y0, x0] * (1 - fx) + g[y0, x0 + 1] * fx
                    bottom = g[y0 + 1, x0] * (1 - fx) + g[y0 + 1, x0 + 1] * fx
                    out[n, i, j, c] = top * (1 - fy) + bottom * fy + grain[n, c, i, j]
    return np.clip(out, 0.0, 255.0)


def test_seeded_images_follow_their_recipe_by_hand() -> None:
    images = seeded_images(2, 11, (13, 17))
    np.testing.assert_allclose(images, _seeded_by_loops(2, 11, 13, 17), atol=1e-3)


# --- process_bbox -------------------------------------------------------------------------


def test_process_bbox_tall_box_is_widened_and_enlarged() -> None:
    x, y, w, h = process_bbox([100, 200, 51, 201], 1000, 1000)
    # sanitised to (100, 200, 50, 200); centre (125, 300); square 200 then x1.25
    assert (w, h) == pytest.approx((250.0, 250.0))
    assert (x + w / 2, y + h / 2) == pytest.approx((125.0, 300.0))


def test_process_bbox_wide_box_and_input_aspect() -> None:
    _, _, w, h = process_bbox([0, 0, 401, 101], 1000, 1000)
    assert (w, h) == pytest.approx((500.0, 500.0))
    # a 192x256 (w/h = 0.75) input keeps that aspect
    _, _, w, h = process_bbox([10, 10, 101, 101], 1000, 1000, aspect_ratio=0.75)
    assert w / h == pytest.approx(0.75)
    assert h == pytest.approx(100 / 0.75 * 1.25)


def test_process_bbox_clips_to_the_image_from_the_clipped_corner() -> None:
    # x < 0: x1 = 0 and x2 = min(W-1, 0 + w-1): the width is not reduced by the overhang
    x, y, w, h = process_bbox([-50, -20, 101, 101], 640, 480)
    assert (x + w / 2, y + h / 2) == pytest.approx((50.0, 50.0))
    assert w == pytest.approx(125.0)
    # the right/bottom edge is clipped to W-1 / H-1
    x, y, w, h = process_bbox([600, 400, 101, 101], 640, 480)
    assert (x + w / 2, y + h / 2) == pytest.approx(((600 + 639) / 2, (400 + 479) / 2))


@pytest.mark.parametrize(
    "bbox",
    [
        [10, 10, 0, 50],  # no width
        [10, 10, 50, -5],  # negative height
        [700, 10, 50, 50],  # entirely right of a 640-wide image
        [10, 500, 50, 50],  # entirely below a 480-high image
        [10, 10, 1, 1],  # one pixel: collapses to zero size
    ],
)
def test_process_bbox_drops_degenerate_boxes(bbox: list[float]) -> None:
    assert process_bbox(bbox, 640, 480) is None


@pytest.mark.parametrize(
    "bbox",
    [
        [0.0, 0.0, 10.0, 0.0],  # zero height: dropped, not a division by zero
    ],
)
def test_zero_area_boxes_are_dropped(bbox: list[float]) -> None:
    assert process_bbox(bbox, 100, 100) is None


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        # w 2, h 0.5 (area 1) -> 1 x 0 after the -1 -> squared to 1 x 1, x1.25, centre (0.5, 0).
        ([0.0, 0.0, 2.0, 0.5], (-0.125, -0.625, 1.25, 1.25)),
        # One pixel wide (x2 == x1) but 10 tall: widened to 9 x 9, x1.25, centre (20, 24.5).
        ([20.0, 20.0, 1.0, 10.0], (14.375, 18.875, 11.25, 11.25)),
        # Same with one pixel tall (y2 == y1).
        ([20.0, 20.0, 10.0, 1.0], (18.875, 14.375, 11.25, 11.25)),
        # Sub-pixel box: 0.5 x 0.5 -> 0.625 x 0.625, still a box.
        ([10.0, 10.0, 1.5, 1.5], (10.25 - 0.3125, 10.25 - 0.3125, 0.625, 0.625)),
    ],
)
def test_thin_and_tiny_boxes_are_kept(bbox: list[float], expected: tuple) -> None:
    assert process_bbox(bbox, 100, 100) == pytest.approx(expected, abs=1e-12)


def test_tall_box_is_widened_by_the_input_aspect() -> None:
    # 10 x 20 (after -1) with width/height 0.75 -> 15 x 20, x1.25 -> 18.75 x 25, centre (5, 10).
    box = process_bbox([0.0, 0.0, 11.0, 21.0], 100, 100, aspect_ratio=0.75)
    assert box == pytest.approx((5 - 9.375, 10 - 12.5, 18.75, 25.0))
