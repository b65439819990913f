"""Metrics: the back-projection oracle, rigid alignment, Thorax exclusion, weighting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from converter.core.variants import JOINT_NAMES, get_variant
from converter.evaluation.evaluate import score
from converter.h36m.dataset import load_dataset
from converter.h36m.metrics import (
    back_project,
    compare_backends,
    eval_joint_indices,
    joint_errors,
    rigid_align,
    rigid_transform,
    scored_poses,
    summarize,
    to_heatmap_units,
)
from converter.h36m.synthetic import BBOX_ROOT_FILE


@pytest.fixture(scope="module")
def synthetic_root(synthetic_set) -> Path:
    return synthetic_set("reference")


def _oracle_coords(dataset, spec) -> np.ndarray:
    samples = dataset.samples
    return to_heatmap_units(
        np.stack([s.joints_cam for s in samples]),
        np.array([s.bbox for s in samples]),
        np.array([s.root_depth for s in samples]),
        np.array([s.focal for s in samples]),
        np.array([s.center for s in samples]),
        spec.heatmap_hw,
        spec.depth_dim,
    )


@pytest.mark.parametrize("variant", ["XS", "L"])
@pytest.mark.parametrize("protocol", [1, 2])
@pytest.mark.parametrize("rootnet", [False, True])
def test_oracle_predictions_score_zero(
    synthetic_root: Path, variant: str, protocol: int, rootnet: bool
) -> None:
    """(a) GT pushed through the exact inverse of the back-projection scores ~0 mm."""
    spec = get_variant(variant)
    bbox_root = synthetic_root / BBOX_ROOT_FILE if rootnet else None
    dataset = load_dataset(synthetic_root, protocol, bbox_root=bbox_root)
    coords = _oracle_coords(dataset, spec)
    # the oracle lands inside the heatmap volume, like a real prediction would
    assert coords[..., 0].min() > 0 and coords[..., 0].max() < spec.heatmap_hw[1]
    assert coords[..., 2].min() > 0 and coords[..., 2].max() < spec.depth_dim
    _, _, summary = score(dataset, coords, spec)
    assert summary.metric == ("PA-MPJPE" if protocol == 1 else "MPJPE")
    assert summary.total_mm < 0.5
    assert max(v for _, _, v in summary.per_action) < 0.5


def test_back_projection_formula() -> None:
    coords = np.array([[[16.0, 8.0, 24.0]]])
    bbox = np.array([[100.0, 200.0, 320.0, 320.0]])
    out = back_project(coords, bbox, np.array([5000.0]), np.array([[1000.0, 1100.0]]),
                       np.array([[500.0, 510.0]]), (32, 32), 32)  # fmt: skip
    u, v = 16 / 32 * 320 + 100, 8 / 32 * 320 + 200
    z = (24 / 32 * 2 - 1) * 1000 + 5000
    np.testing.assert_allclose(out[0, 0], [(u - 500) / 1000 * z, (v - 510) / 1100 * z, z])


def _independent_kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Written separately from converter.h36m.metrics: B ≈ R A + t via the cross-covariance SVD."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(cb.T @ ca)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1.0, 1.0, d]) @ vt
    return r, b.mean(0) - r @ a.mean(0)


def test_rigid_alignment_recovers_rotation_and_translation() -> None:
    """(b) a known rotation and translation come back to 1e-6."""
    rng = np.random.default_rng(3)
    source = rng.normal(0.0, 300.0, size=(5, 18, 3))
    rotations = Rotation.random(5, random_state=7).as_matrix()
    translations = rng.normal(0.0, 500.0, size=(5, 3))
    target = np.einsum("nij,nkj->nki", rotations, source) + translations[:, None, :]
    r, t = rigid_transform(source, target)
    np.testing.assert_allclose(r, rotations, atol=1e-6)
    np.testing.assert_allclose(t, translations, atol=1e-6)
    np.testing.assert_allclose(rigid_align(source, target), target, atol=1e-6)


def test_rigid_alignment_matches_scipy_and_an_independent_svd() -> None:
    rng = np.random.default_rng(4)
    source = rng.normal(0.0, 300.0, size=(6, 18, 3))
    target = source @ Rotation.random(random_state=1).as_matrix().T
    target = target + rng.normal(0.0, 40.0, size=target.shape)  # noisy: no exact solution
    r, t = rigid_transform(source, target)
    for n in range(source.shape[0]):
        a, b = source[n], target[n]
        expected, _ = Rotation.align_vectors(b - b.mean(0), a - a.mean(0))
        np.testing.assert_allclose(r[n], expected.as_matrix(), atol=1e-6)
        r_svd, t_svd = _independent_kabsch(a, b)
        np.testing.assert_allclose(r[n], r_svd, atol=1e-6)
        np.testing.assert_allclose(t[n], t_svd, atol=1e-6)


def test_rigid_alignment_has_no_scale_and_no_reflection() -> None:
    rng = np.random.default_rng(5)
    gt = rng.normal(0.0, 300.0, size=(1, 18, 3))
    # a scaled prediction stays wrong: PA-MPJPE here is rotation + translation only
    aligned = rigid_align(gt * 1.1, gt)
    assert joint_errors(aligned, gt, range(18)).mean() > 10.0
    # a mirrored prediction gives a proper rotation, not a reflection
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    r, _ = rigid_transform(mirrored, gt)
    assert np.linalg.det(r[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(r[0] @ r[0].T, np.eye(3), atol=1e-9)


def test_thorax_is_excluded_and_totals_are_sample_weighted() -> None:
    joints = eval_joint_indices(JOINT_NAMES)
    assert len(joints) == 17 and JOINT_NAMES.index("Thorax") not in joints
    gt = np.zeros((3, 18, 3))
    pred = gt.copy()
    pred[:, 17] = 100.0  # only the Thorax is wrong
    assert joint_errors(pred, gt, joints).max() == 0.0
    # two frames of action 0 with error 1, one of action 1 with error 4
    errors = np.array([[1.0] * 17, [1.0] * 17, [4.0] * 17])
    names = [JOINT_NAMES[i] for i in joints]
    summary = summarize(errors, [0, 0, 1], names, "MPJPE")
    assert summary.total_mm == pytest.approx(2.0)  # not (1 + 4) / 2
    assert summary.per_action == (("Directions", 2, 1.0), ("Discussion", 1, 4.0))
    assert dict(summary.per_joint)["Pelvis"] == pytest.approx(2.0)


def test_protocol_1_aligns_before_dropping_thorax() -> None:
    rng = np.random.default_rng(6)
    gt = rng.normal(0.0, 300.0, size=(2, 18, 3))
    rotation = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    pred = gt @ rotation.T + 50.0
    pred_p1, gt_p1 = scored_poses(pred, gt, 0, protocol=1)
    assert joint_errors(pred_p1, gt_p1, range(17)).max() < 1e-9
    pred_p2, gt_p2 = scored_poses(pred, gt, 0, protocol=2)
    assert joint_errors(pred_p2, gt_p2, range(17)).mean() > 10.0
    np.testing.assert_allclose(gt_p2[:, 0], 0.0)


def test_backend_comparison_finds_the_worst_joint() -> None:
    a = np.zeros((4, 18, 3))
    b = a.copy()
    b[2, 5, 1] = 0.3  # frame 2, L_Knee
    b[1, 17, 0] = 9.0  # the Thorax is not scored, so not compared
    joints = eval_joint_indices(JOINT_NAMES)
    names = [JOINT_NAMES[i] for i in joints]
    sa = summarize(joint_errors(a, a, joints), [0] * 4, names, "MPJPE")
    sb = summarize(joint_errors(b, a, joints), [0] * 4, names, "MPJPE")
    c = compare_backends(("torch", "onnx"), (sa, sb), (a, b), [10, 11, 12, 13], joints, JOINT_NAMES)
    assert c.max_distance_mm == pytest.approx(0.3)
    assert (c.worst_image_id, c.worst_joint) == (12, "L_Knee")
    assert c.difference_mm == pytest.approx(-0.3 / (4 * 17))
    assert c.agrees(0.1) and not c.agrees(0.001)
