"""The trained stand-in behaves like a release: packaged, read, canonicalized, exported; and its
accuracy on the synthetic set is pinned, against the trivial baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from converter.checkpoints.canonical import load_checkpoint
from converter.checkpoints.inspection import inspect_checkpoint
from converter.checkpoints.standin import (
    STANDIN_FILE,
    load_standin,
    mean_training_pose,
    standin_release,
    training_record,
)
from converter.evaluation.baseline import fixed_pose_mpjpe
from converter.evaluation.evaluate import evaluate, torch_backend
from converter.h36m.dataset import load_dataset
from converter.h36m.synthetic import make_synthetic_h36m

# Protocol-2 MPJPE of the stand-in (PyTorch, CPU, no flip) on the 93 synthetic test frames, as
# recorded when it was trained (README, "The trained stand-in").
RECORDED_MPJPE_MM = 62.78
MARGIN_MM = 0.5


def test_the_file_is_small_and_records_its_training() -> None:
    assert STANDIN_FILE.stat().st_size < 8_000_000
    ckpt = load_standin()
    assert ckpt.spec.name == "XS" and ckpt.metadata.weights == "trained"
    record = training_record(ckpt)
    assert {"command", "seed", "steps", "wall_s", "final_loss_smoothed"} <= set(record)
    assert mean_training_pose(ckpt).shape == (18, 3)


def test_release_shaped_copy_reads_like_the_drive_file(tmp_path: Path) -> None:
    release = standin_release(tmp_path)
    assert release.name == "ConvNeXtPose_XS.tar"
    report = inspect_checkpoint(release)
    assert report.variant == "XS" and report.prefixes_stripped == ("module.",)
    assert (
        load_checkpoint(release).metadata.weights_sha256 == load_standin().metadata.weights_sha256
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("h36m")
    make_synthetic_h36m(root)
    return root


def test_mpjpe_is_pinned_and_beats_the_mean_pose(synthetic: Path) -> None:
    ckpt = load_standin()
    dataset = load_dataset(synthetic, 2)
    report = evaluate(dataset, [torch_backend(ckpt, "cpu")], ckpt.spec, flip=False, progress=False)
    mpjpe = report.backend("torch").summary.total_mm
    baseline = fixed_pose_mpjpe(dataset, mean_training_pose(ckpt), ckpt.spec)
    assert baseline >= 2 * mpjpe
    assert mpjpe == pytest.approx(RECORDED_MPJPE_MM, abs=MARGIN_MM)
