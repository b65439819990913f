"""Hostile values for single fields of the annotation files, checked at the function that
refuses them: image paths, camera parameters, boxes that collapse, batched joints."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from converter.core.errors import DatasetError
from converter.h36m import dataset as ds
from converter.h36m.preprocess import process_bbox

IDENTITY = np.eye(3)
FOCAL = [1000.0, 1000.0]
CENTER = [1.0, 2.0]


def _path_refusal(value: object) -> str:
    with pytest.raises(ds._BadRecord) as info:
        ds._relative_file_name(value)
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "file_name '' is not a relative path"),
        ("a\x00b.jpg", "file_name 'a\\x00b.jpg' is not a relative path"),
        (5, "file_name '5' is not a relative path"),
        ([7] * 40, f"file_name {str([7] * 40)[:80]!r} is not a relative path"),
        ("/abs/x.jpg", "file_name '/abs/x.jpg' leaves the images folder"),
        ("\\abs.jpg", "file_name '\\\\abs.jpg' leaves the images folder"),
        ("C:/x.jpg", "file_name 'C:/x.jpg' leaves the images folder"),
        ("C:x.jpg", "file_name 'C:x.jpg' leaves the images folder"),
        ("../x.jpg", "file_name '../x.jpg' leaves the images folder"),
        ("a/../b.jpg", "file_name 'a/../b.jpg' leaves the images folder"),
        # Windows separators are read as separators, so this climbs out too.
        ("a\\..\\b.jpg", "file_name 'a\\\\..\\\\b.jpg' leaves the images folder"),
        ("../" + "a" * 100, f"file_name {('../' + 'a' * 100)[:80]!r} leaves the images folder"),
    ],
)
def test_file_name_refusals(value: object, message: str) -> None:
    assert _path_refusal(value) == message


def test_file_name_length_limits_just_inside_and_outside() -> None:
    longest_part = "a" * 255
    assert ds._relative_file_name(longest_part) == longest_part
    assert _path_refusal("a" * 256) == (
        f"file_name {'a' * 80!r}... is longer than a file system allows"
    )
    # 4096 characters in parts of 200 is exactly PATH_MAX; one more is refused.
    longest_path = "/".join(["b" * 200] * 20) + "/" + "c" * 76
    assert len(longest_path) == 4096
    assert ds._relative_file_name(longest_path) == longest_path
    assert _path_refusal(longest_path + "c") == (
        f"file_name {longest_path[:80]!r}... is longer than a file system allows"
    )


def test_camera_distance_and_focal_limits_are_separate() -> None:
    assert ds.camera_problem(IDENTITY, np.array([100_001.0, 0, 0]), FOCAL, CENTER) == (
        "t [100001, 0, 0] mm or f [1000, 1000] px is beyond 100,000: not a camera of this capture"
    )
    assert ds.camera_problem(IDENTITY, np.array([1.0, 0, 0]), [1000.0, 100_001.0], CENTER) == (
        "t [1, 0, 0] mm or f [1000, 100001] px is beyond 100,000: not a camera of this capture"
    )
    # Exactly at the limit is still a camera.
    at_limit = np.array([100_000.0, 0, 0])
    assert ds.camera_problem(IDENTITY, at_limit, [1000.0, 100_000.0], CENTER) is None


def test_huge_rotation_entries_are_refused_without_float_warnings() -> None:
    # R·Rᵀ overflows (inf) and mixes +inf with -inf (nan): a refusal, not a RuntimeWarning.
    rotation = np.array([[1e200, 1e200, 0.0], [1e200, -1e200, 0.0], [0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = ds.camera_problem(rotation, np.array([1.0, 0, 0]), FOCAL, CENTER)
    assert problem is not None
    assert problem.startswith("R is not a rotation")


@pytest.mark.parametrize(
    "bbox",
    [
        [0.0, 0.0, 10.0, 0.0],  # zero height: dropped, not a division by zero
        [0.0, 0.0, 0.0, 10.0],
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


def test_thorax_is_added_to_batched_joints() -> None:
    joints = np.zeros((2, 17, 3))
    joints[:, 11] = [[2.0, 4.0, 6.0], [1.0, 1.0, 1.0]]  # shoulders (H36M order 11, 14)
    joints[:, 14] = [[4.0, 8.0, 10.0], [3.0, 3.0, 3.0]]
    with_thorax = ds.add_thorax(joints)
    assert with_thorax.shape == (2, 18, 3)
    np.testing.assert_allclose(with_thorax[:, 17], [[3.0, 6.0, 8.0], [2.0, 2.0, 2.0]])


def test_world_to_camera_takes_a_column_translation() -> None:
    points = np.array([[1.0, 2.0, 3.0]])
    moved = ds.world_to_camera(points, IDENTITY, np.array([[10.0], [20.0], [30.0]]))
    np.testing.assert_allclose(moved, [[11.0, 22.0, 33.0]])


@pytest.mark.parametrize("field", ["R", "t", "f", "c"])
def test_a_camera_number_too_large_for_a_float_is_one_line(field: str) -> None:
    # json reads 1 followed by 400 zeros as a Python int; no float64 holds it (10**308 is near
    # the largest), so each conversion to float overflows instead of giving inf.
    camera = {"R": IDENTITY.tolist(), "t": [1.0, 2.0, 3.0], "f": list(FOCAL), "c": list(CENTER)}
    huge = 10**400
    if field == "R":
        camera["R"] = [[huge, 0, 0], [0, 1, 0], [0, 0, 1]]
    else:
        camera[field] = [huge, *camera[field][1:]]
    with pytest.raises(DatasetError) as refused:
        ds._parse_cameras(Path("camera.json"), {"1": camera})
    assert str(refused.value) == "camera.json: camera 1 holds a number too large for a float"


def test_a_camera_number_just_inside_a_float_is_read() -> None:
    camera = {"R": IDENTITY.tolist(), "t": [10**300, 0, 0], "f": list(FOCAL), "c": list(CENTER)}
    with pytest.raises(DatasetError) as refused:  # read as 1e300, then refused as no camera
        ds._parse_cameras(Path("camera.json"), {"1": camera})
    assert "is beyond 100,000: not a camera of this capture" in str(refused.value)
