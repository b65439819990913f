"""The trivial baseline: always answer one fixed pose. An estimate must beat it to mean anything."""

from __future__ import annotations

import numpy as np

from converter.core.variants import VariantSpec
from converter.h36m.dataset import H36MDataset
from converter.h36m.metrics import eval_joint_indices, joint_errors, root_relative


def fixed_pose_mpjpe(dataset: H36MDataset, pose_mm: np.ndarray, spec: VariantSpec) -> float:
    """Protocol-2 MPJPE (root-relative, Thorax excluded) of answering pose_mm for every frame."""
    truth = root_relative(np.stack([s.joints_cam for s in dataset.samples]), spec.root_index)
    answer = root_relative(np.asarray(pose_mm, dtype=np.float64)[None], spec.root_index)
    answers = np.broadcast_to(answer, truth.shape)
    return float(joint_errors(answers, truth, eval_joint_indices(spec.joint_names)).mean())
