"""Hostile values for single fields of the annotation files, checked at the function that
refuses them (image paths, camera parameters), and the joint helpers' batched shapes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from converter.core.errors import DatasetError
from converter.h36m import dataset as ds

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
    # json reads a long integer as a Python int of any size. 2**1024 - 2**970 is the smallest
    # that no float64 holds (it would round up to 2**1024): the conversion overflows.
    camera = {"R": IDENTITY.tolist(), "t": [1.0, 2.0, 3.0], "f": list(FOCAL), "c": list(CENTER)}
    huge = 2**1024 - 2**970
    if field == "R":
        camera["R"] = [[huge, 0, 0], [0, 1, 0], [0, 0, 1]]
    else:
        camera[field] = [huge, *camera[field][1:]]
    with pytest.raises(DatasetError) as refused:
        ds._parse_cameras(Path("camera.json"), {"1": camera})
    assert str(refused.value) == "camera.json: camera 1 holds a number too large for a float"


def test_a_camera_number_just_inside_a_float_converts_then_fails_the_camera_bound() -> None:
    largest = 2**1024 - 2**970 - 1  # rounds down to the largest float64
    camera = {"R": IDENTITY.tolist(), "t": [largest, 0, 0], "f": list(FOCAL), "c": list(CENTER)}
    with pytest.raises(DatasetError) as refused:
        ds._parse_cameras(Path("camera.json"), {"1": camera})
    assert "is beyond 100,000: not a camera of this capture" in str(refused.value)
