"""Human3.6M metrics in pure numpy, as the reference evaluates them (facts §4.6).

Heatmap coordinates are back-projected through the box and the camera, both poses are made
root-relative, Protocol 1 rigidly aligns the prediction to the ground truth (rotation and
translation, no scale), the Thorax is dropped, and errors are averaged over samples and joints
(sample-weighted totals, not the mean of the action means).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dataset import ACTION_NAMES

THORAX = "Thorax"


def eval_joint_indices(joint_names: Sequence[str]) -> tuple[int, ...]:
    """Every joint but the Thorax, which the reference adds by hand and never scores."""
    return tuple(i for i, name in enumerate(joint_names) if name != THORAX)


def back_project(
    coords: np.ndarray,
    bboxes: np.ndarray,
    root_depths: np.ndarray,
    focals: np.ndarray,
    centers: np.ndarray,
    heatmap_hw: tuple[int, int],
    depth_dim: int,
    depth_range_mm: float = 2000.0,
) -> np.ndarray:
    """(N, J, 3) heatmap units -> (N, J, 3) camera millimetres.

    u = x / W·bw + bx, v = y / H·bh + by, Z = (z / D·2 - 1)·range/2 + Z_root,
    then X = (u - cx) / fx·Z, Y = (v - cy) / fy·Z with each image's own camera.
    """
    coords = np.asarray(coords, dtype=np.float64)
    bboxes = np.asarray(bboxes, dtype=np.float64)[:, None, :]
    focals = np.asarray(focals, dtype=np.float64)[:, None, :]
    centers = np.asarray(centers, dtype=np.float64)[:, None, :]
    h, w = heatmap_hw
    u = coords[..., 0] / w * bboxes[..., 2] + bboxes[..., 0]
    v = coords[..., 1] / h * bboxes[..., 3] + bboxes[..., 1]
    z = (coords[..., 2] / depth_dim * 2.0 - 1.0) * (depth_range_mm / 2.0)
    z = z + np.asarray(root_depths, dtype=np.float64)[:, None]
    x = (u - centers[..., 0]) / focals[..., 0] * z
    y = (v - centers[..., 1]) / focals[..., 1] * z
    return np.stack([x, y, z], axis=-1)


def to_heatmap_units(
    joints_cam: np.ndarray,
    bboxes: np.ndarray,
    root_depths: np.ndarray,
    focals: np.ndarray,
    centers: np.ndarray,
    heatmap_hw: tuple[int, int],
    depth_dim: int,
    depth_range_mm: float = 2000.0,
) -> np.ndarray:
    """The exact inverse of back_project: camera mm -> heatmap units (used by tests and demos)."""
    joints_cam = np.asarray(joints_cam, dtype=np.float64)
    bboxes = np.asarray(bboxes, dtype=np.float64)[:, None, :]
    focals = np.asarray(focals, dtype=np.float64)[:, None, :]
    centers = np.asarray(centers, dtype=np.float64)[:, None, :]
    h, w = heatmap_hw
    z_cam = joints_cam[..., 2]
    u = joints_cam[..., 0] / z_cam * focals[..., 0] + centers[..., 0]
    v = joints_cam[..., 1] / z_cam * focals[..., 1] + centers[..., 1]
    x = (u - bboxes[..., 0]) / bboxes[..., 2] * w
    y = (v - bboxes[..., 1]) / bboxes[..., 3] * h
    relative = z_cam - np.asarray(root_depths, dtype=np.float64)[:, None]
    z = (relative / (depth_range_mm / 2.0) + 1.0) / 2.0 * depth_dim
    return np.stack([x, y, z], axis=-1)


def root_relative(poses: np.ndarray, root_index: int) -> np.ndarray:
    """(N, J, 3) -> the same poses with the root joint moved to the origin."""
    poses = np.asarray(poses, dtype=np.float64)
    return poses - poses[:, root_index : root_index + 1, :]


def rigid_transform(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch without scale: (R (N,3,3), t (N,3)) minimising |R·source + t - target| per sample.

    A reflection (det < 0) is turned into the nearest rotation by flipping the last singular
    direction, so R is always a proper rotation.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mean_s = source.mean(axis=1, keepdims=True)
    mean_t = target.mean(axis=1, keepdims=True)
    cov = np.swapaxes(source - mean_s, 1, 2) @ (target - mean_t)  # (N, 3, 3)
    u, _, vt = np.linalg.svd(cov)
    rotation = np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)
    reflected = np.linalg.det(rotation) < 0
    if np.any(reflected):
        vt = vt.copy()
        vt[reflected, 2, :] *= -1.0
        rotation[reflected] = np.swapaxes(vt[reflected], 1, 2) @ np.swapaxes(u[reflected], 1, 2)
    translation = mean_t[:, 0, :] - np.einsum("nij,nj->ni", rotation, mean_s[:, 0, :])
    return rotation, translation


def rigid_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """source (N, J, 3) rotated and translated onto target (no scale), per sample."""
    rotation, translation = rigid_transform(source, target)
    return np.einsum("nij,nkj->nki", rotation, source) + translation[:, None, :]


def scored_poses(
    pred_cam: np.ndarray, gt_cam: np.ndarray, root_index: int, protocol: int
) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative poses as scored: prediction rigidly aligned for Protocol 1 (all joints,
    before the Thorax is dropped, as the reference does)."""
    pred = root_relative(pred_cam, root_index)
    gt = root_relative(gt_cam, root_index)
    if protocol == 1:
        pred = rigid_align(pred, gt)
    return pred, gt


def joint_errors(pred: np.ndarray, gt: np.ndarray, joints: Sequence[int]) -> np.ndarray:
    """(N, len(joints)) Euclidean distances in mm."""
    index = list(joints)
    return np.linalg.norm(pred[:, index, :] - gt[:, index, :], axis=-1)


@dataclass(frozen=True)
class MetricSummary:
    metric: str  # "MPJPE" or "PA-MPJPE"
    frames: int
    total_mm: float  # mean over every (frame, joint) pair: sample-weighted
    per_action: tuple[tuple[str, int, float], ...]  # (action, frames, mm), in action order
    per_joint: tuple[tuple[str, float], ...]  # (joint, mm)

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "frames": self.frames,
            "total_mm": self.total_mm,
            "per_action_mm": {name: value for name, _, value in self.per_action},
            "per_action_frames": {name: count for name, count, _ in self.per_action},
            "per_joint_mm": dict(self.per_joint),
        }


def summarize(
    errors: np.ndarray, action_indices: Sequence[int], joint_names: Sequence[str], metric: str
) -> MetricSummary:
    """errors (N, J_eval) -> totals, per action (actions present only) and per joint."""
    errors = np.asarray(errors, dtype=np.float64)
    actions = np.asarray(action_indices, dtype=np.int64)
    per_action = []
    for index, name in enumerate(ACTION_NAMES):
        mask = actions == index
        if mask.any():
            per_action.append((name, int(mask.sum()), float(errors[mask].mean())))
    per_joint = tuple(
        (name, float(value)) for name, value in zip(joint_names, errors.mean(axis=0), strict=True)
    )
    return MetricSummary(
        metric=metric,
        frames=int(errors.shape[0]),
        total_mm=float(errors.mean()) if errors.size else float("nan"),
        per_action=tuple(per_action),
        per_joint=per_joint,
    )


@dataclass(frozen=True)
class BackendComparison:
    """How far two backends' scored predictions are apart, in mm."""

    backends: tuple[str, str]
    metric: str
    values_mm: tuple[float, float]
    difference_mm: float  # first minus second
    max_distance_mm: float  # largest per-frame, per-joint distance between the predictions
    mean_distance_mm: float
    worst_image_id: int
    worst_joint: str

    def agrees(self, max_delta_mm: float) -> bool:
        return abs(self.difference_mm) <= max_delta_mm

    def to_dict(self) -> dict:
        return {
            "backends": list(self.backends),
            "metric": self.metric,
            "values_mm": dict(zip(self.backends, self.values_mm, strict=True)),
            "difference_mm": self.difference_mm,
            "max_distance_mm": self.max_distance_mm,
            "mean_distance_mm": self.mean_distance_mm,
            "worst_image_id": self.worst_image_id,
            "worst_joint": self.worst_joint,
        }


def compare_backends(
    names: tuple[str, str],
    summaries: tuple[MetricSummary, MetricSummary],
    scored: tuple[np.ndarray, np.ndarray],
    image_ids: Sequence[int],
    joints: Sequence[int],
    joint_names: Sequence[str],
) -> BackendComparison:
    """Compare two backends on the poses that were scored (root-relative, aligned for P1).

    joints are the scored joint indices into joint_names (all J names).
    """
    index = list(joints)
    distance = np.linalg.norm(scored[0][:, index, :] - scored[1][:, index, :], axis=-1)
    frame, joint = np.unravel_index(int(np.argmax(distance)), distance.shape)
    first, second = summaries[0].total_mm, summaries[1].total_mm
    return BackendComparison(
        backends=names,
        metric=summaries[0].metric,
        values_mm=(first, second),
        difference_mm=first - second,
        max_distance_mm=float(distance.max()),
        mean_distance_mm=float(distance.mean()),
        worst_image_id=int(image_ids[frame]),
        worst_joint=str(joint_names[index[int(joint)]]),
    )
