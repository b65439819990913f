"""The metric reports users read (eval's JSON and table), and double precision for float32 input.

Expected values are hand arithmetic on small arrays; float32 inputs (what an ONNX graph returns)
are checked against the same formulas evaluated in float64 on the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from converter.core.variants import JOINT_NAMES
from converter.h36m.metrics import (
    BackendComparison,
    MetricSummary,
    back_project,
    compare_backends,
    eval_joint_indices,
    rigid_transform,
    root_relative,
    summarize,
    to_heatmap_units,
)


def test_summary_by_action_and_joint_by_hand() -> None:
    # 3 frames x 2 joints; frames 0 and 2 are Phoning (action 4), frame 1 is Directions (0).
    errors = [[1.0, 3.0], [2.0, 4.0], [6.0, 8.0]]
    summary = summarize(errors, [4, 0, 4], ["Pelvis", "Head"], "PA-MPJPE")
    assert summary.frames == 3  # frames, not joints
    assert summary.total_mm == pytest.approx(24.0 / 6)
    # in the action table's order, not the order met: Directions before Phoning
    assert summary.per_action == (("Directions", 1, 3.0), ("Phoning", 2, 4.5))
    assert summary.per_joint == (("Pelvis", 3.0), ("Head", 5.0))
    assert summary.to_dict() == {
        "metric": "PA-MPJPE",
        "frames": 3,
        "total_mm": pytest.approx(4.0),
        "per_action_mm": {"Directions": 3.0, "Phoning": 4.5},
        "per_action_frames": {"Directions": 1, "Phoning": 2},
        "per_joint_mm": {"Pelvis": 3.0, "Head": 5.0},
    }


def test_joint_names_that_do_not_match_the_errors_are_refused() -> None:
    # A shorter or longer name list would label every per-joint column wrongly.
    with pytest.raises(ValueError):
        summarize([[1.0, 2.0]], [0], ["Pelvis", "R_Hip", "R_Knee"], "MPJPE")
    with pytest.raises(ValueError):
        summarize([[1.0, 2.0]], [0], ["Pelvis"], "MPJPE")


def test_a_summary_of_no_frames_is_nan_not_an_error() -> None:
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # numpy's empty-mean warning
        summary = summarize(np.zeros((0, 2)), [], ["Pelvis", "Head"], "MPJPE")
    assert summary.frames == 0 and summary.per_action == ()
    assert math.isnan(summary.total_mm)


def _comparison() -> BackendComparison:
    a = np.full((2, 18, 3), 100.0)  # non-zero poses: the distance is |a - b|, not |a + b|
    b = a.copy()
    b[0, 2] += (3.0, 4.0, 0.0)  # 5 mm at R_Knee in the first image
    b[1, 12] += (0.0, 0.0, 2.0)  # 2 mm at L_Elbow in the second
    b[1, 17] += 50.0  # the Thorax is not scored, so not compared
    first = MetricSummary("PA-MPJPE", 2, 40.0, (("Walking", 2, 40.0),), ())
    second = MetricSummary("PA-MPJPE", 2, 42.5, (("Walking", 2, 42.5),), ())
    joints = eval_joint_indices(JOINT_NAMES)
    return compare_backends(("torch", "onnx"), (first, second), (a, b), [7, 9], joints,
                            JOINT_NAMES)  # fmt: skip


def test_backend_comparison_report_by_hand() -> None:
    c = _comparison()
    assert c.to_dict() == {
        "backends": ["torch", "onnx"],
        "metric": "PA-MPJPE",
        "values_mm": {"torch": 40.0, "onnx": 42.5},
        "difference_mm": -2.5,
        "max_distance_mm": 5.0,
        "mean_distance_mm": pytest.approx(7.0 / 34),  # 5 + 2 mm over 2 frames x 17 joints
        "worst_image_id": 7,
        "worst_joint": "R_Knee",
    }


def test_backends_agree_up_to_and_including_the_limit() -> None:
    c = _comparison()  # difference -2.5 mm
    assert c.agrees(2.5) and c.agrees(2.6)
    assert not c.agrees(2.4999)


def test_float32_heatmap_coords_are_back_projected_in_double_precision() -> None:
    # What an ONNX graph returns is float32; the metric must not round in float32 on the way.
    coords = np.array([[[16.3, 8.7, 24.1]]], dtype=np.float32)
    x, y, d = (float(v) for v in coords[0, 0])
    out = back_project(coords, [[100.0, 200.0, 320.0, 300.0]], [5000.0], [[1000.0, 1100.0]],
                       [[500.0, 510.0]], (30, 30), 30)  # fmt: skip
    u, v = x / 30 * 320 + 100, y / 30 * 300 + 200
    z = (d / 30 * 2 - 1) * 1000 + 5000
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[0, 0], [(u - 500) / 1000 * z, (v - 510) / 1100 * z, z],
                               rtol=1e-13)  # fmt: skip


def test_float32_camera_joints_go_to_heatmap_units_in_double_precision() -> None:
    joints = np.array([[[-123.4, 456.7, 4321.9]]], dtype=np.float32)
    x, y, z = (float(v) for v in joints[0, 0])
    out = to_heatmap_units(joints, [[100.0, 200.0, 320.0, 300.0]], [4000.0], [[1000.0, 1100.0]],
                           [[500.0, 510.0]], (30, 30), 30)  # fmt: skip
    u, v = x / z * 1000 + 500, y / z * 1100 + 510
    expected = [(u - 100) / 320 * 30, (v - 200) / 300 * 30, ((z - 4000) / 1000 + 1) / 2 * 30]
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-13)


def test_float32_poses_are_made_root_relative_exactly() -> None:
    # 1000.3 - (-3000.7) in float32 rounds to 4001.0; in float64 it is exact.
    poses = np.array([[[-3000.7, 0.0, 0.0], [1000.3, 0.0, 0.0]]], dtype=np.float32)
    out = root_relative(poses, 0)
    assert out[0, 1, 0] == float(np.float32(1000.3)) - float(np.float32(-3000.7))
    assert out[0, 1, 0] != 4001.0


def test_float32_poses_are_aligned_in_double_precision() -> None:
    rng = np.random.default_rng(11)
    source = rng.normal(0.0, 300.0, size=(3, 18, 3)).astype(np.float32)
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    target = (source.astype(np.float64) @ rotation.T + 40.0).astype(np.float32)
    target[:, 4] += np.float32(25.0)  # noisy: no exact fit, so rounding shows in the answer
    r, t = rigid_transform(source, target)
    r64, t64 = rigid_transform(source.astype(np.float64), target.astype(np.float64))
    np.testing.assert_allclose(r, r64, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t, t64, rtol=0, atol=1e-9)


def test_float32_errors_are_averaged_in_double_precision() -> None:
    errors = np.random.default_rng(0).uniform(0.0, 100.0, size=(5, 17)).astype(np.float32)
    exact = math.fsum(float(v) for v in errors.ravel()) / errors.size
    summary = summarize(errors, [0] * 5, [JOINT_NAMES[i] for i in range(17)], "MPJPE")
    assert summary.total_mm == pytest.approx(exact, rel=1e-12, abs=0)
    assert summary.per_action[0][2] == pytest.approx(exact, rel=1e-12, abs=0)
