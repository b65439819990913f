"""The trained stand-in: a ConvNeXtPose-XS trained on drawn people, shipped with the package.

The released weights cannot be downloaded everywhere, and random weights say nothing about
accuracy. training/train_standin.py trains XS on procedurally drawn people (random poses,
bodies, cameras, backgrounds) through the real preprocessing; the result is this file: fp16
weights with fp32 BatchNorm statistics, canonical metadata, and in its header the training
record (command, seed, steps, wall time, final loss) and the mean training pose, which is the
trivial baseline an estimate must beat.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from converter.checkpoints.canonical import CanonicalCheckpoint, load_checkpoint
from converter.checkpoints.fabricate import fabricate_release
from converter.core.errors import CheckpointError

STANDIN_VARIANT = "XS"
STANDIN_FILE = Path(__file__).with_name("standin_xs.safetensors")


def load_standin() -> CanonicalCheckpoint:
    if not STANDIN_FILE.is_file():
        raise CheckpointError(f"{STANDIN_FILE}: the trained stand-in is not installed")
    return load_checkpoint(STANDIN_FILE, STANDIN_VARIANT)


def _header(ckpt: CanonicalCheckpoint, key: str) -> str:
    header = ckpt.raw.header_metadata if ckpt.raw is not None else {}
    if key not in header:
        raise CheckpointError(f"{STANDIN_FILE}: no {key!r} record in the header")
    return header[key]


def training_record(ckpt: CanonicalCheckpoint) -> dict:
    """How the stand-in was trained: command, seed, steps, wall time, final loss."""
    return json.loads(_header(ckpt, "training"))


def mean_training_pose(ckpt: CanonicalCheckpoint) -> np.ndarray:
    """(18, 3) root-relative camera mm: the average pose of the training stream."""
    pose = np.asarray(json.loads(_header(ckpt, "mean_training_pose_mm")), dtype=np.float64)
    if pose.shape != (ckpt.spec.joint_num, 3) or not np.isfinite(pose).all():
        raise CheckpointError(f"{STANDIN_FILE}: malformed mean training pose")
    return pose


def standin_release(directory: str | Path) -> Path:
    """The stand-in shaped like the Drive file: ``ConvNeXtPose_XS.tar``, ``module.`` keys."""
    return fabricate_release(STANDIN_VARIANT, Path(directory), weights=load_standin().state_dict)
