"""converter.verdicts.judge with a tiny model and a fake session: batches, order and the verdict.

The model is a two-parameter torch module whose coords are a closed-form function of the image,
and the session a plain object with ``run(chunk) -> {"coords": ...}`` computing the same thing
in numpy float64 (optionally perturbed). So the expected errors are known exactly, and every
test runs in milliseconds (this file is part of `just mutate`).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from converter.core.errors import UsageError
from converter.core.variants import get_variant
from converter.h36m.crops import Crops
from converter.verdicts import judge
from converter.verdicts.judge import (
    _cyclic_batches,
    float64_reference,
    pose_reference,
    resolve_seed,
    run_fp32_verdict,
    run_pose_verdict,
    run_pose_verdicts,
    verdict_images,
)
from converter.verdicts.parity import Limit, PoseBudget

XS = get_variant("XS")
CPU = torch.device("cpu")
SCALE = (0.5, 0.25, 2.0)


class TinyPose(torch.nn.Module):
    """coords[n, j] = channel means of image n x SCALE + j; heatmaps: twice the first channel."""

    def __init__(self, scale=SCALE) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward_heatmaps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means = image.mean(dim=(2, 3))
        joints = torch.arange(18, dtype=image.dtype)[None, :, None]
        return means[:, None, :] * self.scale + joints, image[:, :1] * 2

    forward_moments = forward_heatmaps  # no softmax sum to cancel

    def probabilities(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """One cell of mass 1 per joint: the softmax sum's bound is 6u x |c|, next to nothing."""
        return torch.ones((heatmaps.shape[0], 18, 1), dtype=heatmaps.dtype)


def coords_by_hand(images: np.ndarray, scale=SCALE) -> np.ndarray:
    means = images.astype(np.float64).mean(axis=(2, 3))
    return means[:, None, :] * np.asarray(scale) + np.arange(18.0)[None, :, None]


class FakeSession:
    def __init__(self, perturb=None, names=("coords",)) -> None:
        self.calls: list[np.ndarray] = []
        self.perturb = perturb
        self.names = names

    def run(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(chunk.copy())
        coords = coords_by_hand(chunk)
        if self.perturb is not None:
            coords = self.perturb(chunk, coords)
        out = {self.names[0]: coords}
        if len(self.names) > 1:
            out[self.names[1]] = chunk[:, :1].astype(np.float64) * 2
        return out


def _images(count: int) -> np.ndarray:
    """Whole-number pixels: channel means are exact in float32 and float64 alike."""
    values = np.arange(count * 3 * 4 * 4, dtype=np.float32).reshape(count, 3, 4, 4) % 8
    return values + np.arange(count, dtype=np.float32)[:, None, None, None] * 16


def test_cyclic_batches_by_hand() -> None:
    assert _cyclic_batches(5, 2) == [[0, 1], [2, 3], [4, 0]]
    assert _cyclic_batches(3, 4) == [[0, 1, 2, 0]]
    assert _cyclic_batches(4, 1) == [[0], [1], [2], [3]]
    assert _cyclic_batches(4, 4) == [[0, 1, 2, 3]]


def test_fp32_verdict_runs_full_batches_over_every_image() -> None:
    images = _images(3)
    session = FakeSession()
    reports = run_fp32_verdict(
        TinyPose(), session, images, (1, 2), {"coords": Limit(4.0, 0.0)}, torch_device=CPU, spec=XS
    )
    assert [r.batch for r in reports] == [1, 2]
    assert [r.samples for r in reports] == [3, 4]  # batch 2: [0, 1], [2, 0]
    shapes = [c.shape[0] for c in session.calls]
    assert shapes == [1, 1, 1, 2, 2]
    np.testing.assert_array_equal(session.calls[4], images[[2, 0]])
    np.testing.assert_array_equal(session.calls[3], images[[0, 1]])
    for report in reports:
        assert report.passed
        (coords,) = report.outputs
        assert coords.name == "coords" and coords.error == 0.0 and coords.floor == 0.0


@pytest.mark.parametrize(("atol", "passed"), [(0.25, True), (0.2499, False)])
def test_one_coordinate_off_by_a_quarter(atol: float, passed: bool) -> None:
    def off(chunk, coords):
        coords = coords.copy()
        hit = chunk[:, 0, 0, 0] == 16.0  # image 1 only, wherever it sits in a batch
        coords[hit, 5, 2] += 0.25
        return coords

    reports = run_fp32_verdict(
        TinyPose(),
        FakeSession(off),
        _images(3),
        (2,),
        {"coords": Limit(4.0, 0.0, atol=atol)},
        torch_device=CPU,
        spec=XS,
    )
    (coords,) = reports[0].outputs
    assert coords.error == 0.25 and coords.passed is passed and reports[0].passed is passed
    assert coords.worst_index == (1, 5, 2)
    assert coords.joint_names is not None and coords.joint_names[5] == "L_Knee"


def test_output_names_map_and_heatmaps_are_judged_when_asked() -> None:
    session = FakeSession(names=("out0", "out1"))
    limits = {"coords": Limit(4.0, 0.0), "heatmaps": Limit(4.0, 0.0)}
    reports = run_fp32_verdict(
        TinyPose(),
        session,
        _images(2),
        (2,),
        limits,
        torch_device=CPU,
        spec=XS,
        output_map={"coords": "out0", "heatmaps": "out1"},
    )
    assert [o.name for o in reports[0].outputs] == ["coords", "heatmaps"]
    assert reports[0].outputs[1].shape == (2, 1, 4, 4) and reports[0].passed


def test_the_given_reference_is_the_one_measured_against() -> None:
    other = float64_reference(TinyPose((0.5, 0.25, 3.0)))
    reports = run_fp32_verdict(
        TinyPose(),
        FakeSession(),
        _images(1),
        (1,),
        {"coords": Limit(4.0, 0.0)},
        torch_device=CPU,
        spec=XS,
        reference=other,
    )
    (coords,) = reports[0].outputs
    # The z scale differs by 1.0: both backends are off by the mean of channel 2 of image 0
    # (3.5) x 1.0 against that reference, so PyTorch's errors are 3.5 in z and 0 in x and y:
    # rms 3.5 / sqrt(3), max 3.5.
    assert (coords.error, coords.floor_max) == (3.5, 3.5)
    assert coords.floor == pytest.approx(3.5 / math.sqrt(3))
    assert coords.limit == pytest.approx(4 * 3.5 / math.sqrt(3))


def test_float64_reference_is_a_copy() -> None:
    model = TinyPose()
    reference = float64_reference(model.train())
    assert reference.scale.dtype == torch.float64 and not reference.training
    assert model.scale.dtype == torch.float32 and reference is not model


def _crops(count: int) -> Crops:
    return Crops(
        images=_images(count),
        boxes=np.array([[100.0, 50.0, 64.0, 64.0]] * count),
        root_depths=np.full(count, 4000.0),
        focals=np.array([[1000.0, 1200.0]] * count),
        centers=np.array([[500.0, 400.0]] * count),
        source="hand-made",
    )


def test_pose_verdict_counts_each_crop_once_and_measures_in_mm() -> None:
    crops = _crops(3)

    def deeper(chunk, coords):
        coords = coords.copy()
        coords[chunk[:, 0, 0, 0] == 32.0, 0, 2] += 1.0  # crop 2's pelvis, one depth bin
        return coords

    session = FakeSession(deeper)
    change = run_pose_verdict(
        TinyPose(),
        session,
        crops,
        2,
        precision="fp16",
        budget=PoseBudget(10.0, 100.0, 100.0),
        torch_device=CPU,
        spec=XS,
    )
    assert [c.shape[0] for c in session.calls] == [2, 2]  # [0, 1], [2, 0]
    assert (change.frames, change.batch, change.precision, change.source) == (
        3,
        2,
        "fp16",
        "hand-made",
    )
    # Back-projection (metrics.back_project's documented formula): one depth bin is
    # 2000 mm / 32 = 62.5 mm of Z, and X, Y move with Z along the pixel's ray.
    x, y, _ = coords_by_hand(_images(3))[2, 0]
    u, v = x / 32 * 64 + 100, y / 32 * 64 + 50
    ray = np.hypot(1.0, np.hypot((u - 500) / 1000, (v - 400) / 1200))
    assert change.worst_mm == pytest.approx(62.5 * ray)
    assert change.worst_joint == "Pelvis"
    assert change.mean_mm == pytest.approx(62.5 * ray / (3 * 17))  # Thorax is not scored
    assert change.passed
    tight = run_pose_verdict(
        TinyPose(),
        FakeSession(deeper),
        crops,
        4,
        precision="int8",
        budget=PoseBudget(10.0, 100.0, 62.0),
        torch_device=CPU,
        spec=XS,
    )
    assert tight.frames == 3 and tight.batch == 4 and not tight.passed


def test_pose_verdict_reads_the_named_output() -> None:
    change = run_pose_verdict(
        TinyPose(),
        FakeSession(names=("pose",)),
        _crops(2),
        1,
        precision="fp16",
        budget=PoseBudget(0.0, 0.0, 0.0),
        torch_device=CPU,
        spec=XS,
        coords_name="pose",
    )
    assert change.worst_mm == 0.0 and change.passed


class CountingPose(TinyPose):
    """TinyPose that records the batch of every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward_heatmaps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.batches.append(image.shape[0])
        return super().forward_heatmaps(image)


def test_pose_reference_is_every_crop_in_order_in_bounded_chunks() -> None:
    model, crops = CountingPose(), _crops(judge.POSE_REFERENCE_CHUNK * 2 + 3)
    reference = pose_reference(model, crops, CPU)
    np.testing.assert_allclose(reference, coords_by_hand(crops.images), rtol=0, atol=1e-5)
    chunk = judge.POSE_REFERENCE_CHUNK
    assert model.batches == [chunk, chunk, 3]


def test_pose_verdicts_run_pytorch_once_per_crop_set_for_every_batch() -> None:
    model, crops = CountingPose(), _crops(5)
    session = FakeSession()
    changes = run_pose_verdicts(
        model, session, (crops, crops), (1, 2), precision="fp16", torch_device=CPU, spec=XS
    )
    assert [(c.batch, c.passed, c.worst_mm) for c in changes] == [
        (1, True, 0.0),
        (2, True, 0.0),
    ] * 2
    assert model.batches == [5, 5]  # one reference per set, not one per set and batch
    assert [c.shape[0] for c in session.calls] == [1] * 5 + [2] * 3 + [1] * 5 + [2] * 3


def test_a_given_pose_reference_is_the_one_measured_against() -> None:
    crops = _crops(3)
    moved = coords_by_hand(crops.images)
    moved[1, 0, 2] += 1.0  # crop 1's pelvis one depth bin away in the reference
    model = CountingPose()
    change = run_pose_verdict(
        model, FakeSession(), crops, 2, precision="fp16", budget=PoseBudget(10.0, 100.0, 100.0),
        torch_device=CPU, spec=XS, reference=moved,
    )  # fmt: skip
    assert model.batches == [] and change.worst_joint == "Pelvis" and change.worst_mm > 62.5
    with pytest.raises(ValueError, match="the reference has 2 crops, not 3"):
        run_pose_verdict(
            model, FakeSession(), crops, 1, precision="fp16", budget=PoseBudget(1.0, 1.0, 1.0),
            torch_device=CPU, spec=XS, reference=moved[:2],
        )  # fmt: skip


def test_seeds() -> None:
    assert resolve_seed(0) == 0 and resolve_seed(2**63 - 1) == 2**63 - 1
    fresh = [resolve_seed(None) for _ in range(20)]
    assert len(set(fresh)) > 1 and all(0 <= s < 2**31 - 1 for s in fresh)
    assert max(fresh) > 2**20  # drawn from the whole 31-bit range, not a small one
    for bad in (-1, 2**63, True):
        with pytest.raises(UsageError) as info:
            resolve_seed(bad)
        assert str(info.value) == (f"seed must be a non-negative integer below 2**63, not {bad}")


def test_verdict_images_are_seeded_noise_then_crops(monkeypatch) -> None:
    calls = []

    def crops(spec, count, seed):
        calls.append((spec.name, count, seed))
        return _crops(count)

    monkeypatch.setattr(judge, "synthetic_crops", crops)
    monkeypatch.setattr(
        judge, "seeded_images", lambda n, seed, hw: np.full((n, 4, 4, 3), seed, np.float32)
    )
    monkeypatch.setattr(
        judge, "normalize_images", lambda images, spec: images.transpose(0, 3, 1, 2)
    )
    images = verdict_images(XS, 2, 7, crops=3)
    assert images.shape == (5, 3, 4, 4) and images.flags["C_CONTIGUOUS"]
    assert (images[:2] == 7).all()
    np.testing.assert_array_equal(images[2:], _images(3))
    assert calls == [("XS", 3, 7)]
    assert verdict_images(XS, 2, 7, crops=0).shape == (2, 3, 4, 4) and len(calls) == 1
    assert verdict_images(XS, 2, 7, crops=1).shape == (3, 3, 4, 4) and len(calls) == 2
    assert verdict_images(XS, 1, 7).shape == (1 + judge.FP32_CROPS, 3, 4, 4)


def test_given_float64_outputs_are_asked_for_after_both_fp32_backends_ran() -> None:
    images = _images(2)
    session = FakeSession()
    asked_after: list[int] = []

    def float64_outputs() -> dict[str, np.ndarray]:
        asked_after.append(len(session.calls))
        return {"coords": coords_by_hand(images, (0.5, 0.25, 3.0))}  # z scale off by 1.0

    reports = run_fp32_verdict(
        TinyPose(), session, images, (1, 2), {"coords": Limit(4.0, 0.0)},
        torch_device=CPU, spec=XS, float64_outputs=float64_outputs,
    )  # fmt: skip
    assert asked_after == [3]  # once, after the graph ran at batch 1 (2 runs) and 2 (1 run)
    # Both backends compute z with scale 2.0 against the given 3.0: off by 1.0 x the channel-2
    # mean, worst for image 1: 3.5 + 16 (see _images).
    for report in reports:
        (coords,) = report.outputs
        assert (coords.error, coords.floor_max) == (19.5, 19.5)
        # z off by each image's channel-2 mean, x and y exact: rms over images and axes
        z_errors = images[:, 2].astype(np.float64).mean(axis=(1, 2))
        assert coords.floor == pytest.approx(math.sqrt((z_errors**2).mean() / 3))


def test_background_reference_is_the_verdict_inputs_and_their_float64_outputs() -> None:
    model = TinyPose()
    background = judge.BackgroundReference(model, XS, 2, seed=11, heatmaps=True)
    images = background.images()
    np.testing.assert_array_equal(images, verdict_images(XS, 2, 11))
    outputs = background.float64_outputs()
    np.testing.assert_allclose(outputs["coords"], coords_by_hand(images), rtol=0, atol=1e-12)
    assert outputs["coords"].dtype == np.float64
    np.testing.assert_array_equal(outputs["heatmaps"], images[:, :1].astype(np.float64) * 2)
    assert model.scale.dtype == torch.float32  # the caller's model was not converted


_RELEASE = threading.Event()  # module level: the model is deep-copied, an Event cannot be


class BlockedPose(TinyPose):
    """TinyPose whose float64 copy waits for _RELEASE before answering."""

    def forward_heatmaps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.dtype == torch.float64:
            assert _RELEASE.wait(timeout=10), "never released"
        return super().forward_heatmaps(image)


def test_background_reference_returns_at_once_and_works_on_one_named_thread() -> None:
    _RELEASE.clear()
    try:
        background = judge.BackgroundReference(BlockedPose(), XS, 2, seed=3, heatmaps=False)
        images = background.images()  # the first task is done; the float64 forward now waits
        workers = [t for t in threading.enumerate() if t.name.startswith("cnp-float64-reference")]
        assert len(workers) == 1  # one worker: the images first, then the float64 forward
    finally:
        # Whatever failed above, the worker must not hold the interpreter's exit for the wait.
        _RELEASE.set()
    outputs = background.float64_outputs()
    np.testing.assert_allclose(outputs["coords"], coords_by_hand(images), rtol=0, atol=1e-12)


class MomentsPose(TinyPose):
    """TinyPose whose moment forward (the floor's) is a quarter off the heatmap forward."""

    def forward_moments(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coords, maps = self.forward_heatmaps(image)
        return coords + 0.25, maps


def test_the_floor_runs_the_moment_forward_and_the_pose_reference_the_heatmap_one() -> None:
    images = _images(2)
    floor = judge.floor_outputs(MomentsPose(), images, CPU, heatmaps=False)
    np.testing.assert_array_equal(floor["coords"], coords_by_hand(images) + 0.25)
    crops = _crops(2)
    reference = pose_reference(MomentsPose(), crops, CPU)
    np.testing.assert_array_equal(reference, coords_by_hand(crops.images))


def test_pytorch_fp32_runs_in_the_model_dtype_whatever_the_images() -> None:
    # float64 images are narrowed to the model's float32 before its forward
    images = _images(1).astype(np.float64) + 0.1
    floor = judge.floor_outputs(TinyPose(), images, CPU, heatmaps=True)
    assert floor["coords"].dtype == np.float32 and floor["heatmaps"].dtype == np.float32
    np.testing.assert_array_equal(floor["heatmaps"], images[:, :1].astype(np.float32) * 2)


def test_the_reference_sum_terms_reach_the_coords_limit_in_batch_order() -> None:
    # Both fp32 sides are exact (floor 0, limit 0): only image 1's sum bound leaves room. Its
    # joint 5 terms: mass 2**-10, no cell above u; z there is 19.5 x 2 + 5 = 44 (see _images), so
    # the allowance is 2 x 2**-10 x 44 = 0.0859375, exact. Batch 2 runs images [0, 1], [2, 0].
    images = _images(3)
    terms = np.zeros((3, 18, 2))
    terms[1, 5, 0] = 2.0**-10

    def verdict(error: float):
        def off(chunk, coords):
            coords = coords.copy()
            coords[chunk[:, 0, 0, 0] == 16.0, 5, 2] += error  # image 1
            return coords

        (report,) = run_fp32_verdict(
            TinyPose(), FakeSession(off), images, (2,), {"coords": Limit(4.0, 0.0, None, 3.0)},
            torch_device=CPU, spec=XS,
            float64_outputs=lambda: {"coords": coords_by_hand(images), "sum_terms": terms},
        )  # fmt: skip
        return report.outputs[0]

    inside = verdict(0.0859375)
    assert inside.passed and inside.max_error == 0.0859375 and inside.floor == 0.0
    outside = verdict(0.0859375 + 2.0**-30)
    assert not outside.passed and outside.worst_index == (1, 5, 2)
    assert (outside.limit, outside.allowance) == (0.0859375, 0.0859375)


def test_drawn_crops_get_the_drawn_budget_and_photos_the_photo_one() -> None:
    from dataclasses import replace

    from converter.verdicts.tolerances import DRAWN_POSE_BUDGETS, POSE_BUDGETS

    photos = _crops(2)
    drawn = replace(photos, drawn=True)
    changes = run_pose_verdicts(
        TinyPose(), FakeSession(), (drawn, photos), (2,), precision="int8", torch_device=CPU,
        spec=XS,
    )  # fmt: skip
    assert [c.budget for c in changes] == [DRAWN_POSE_BUDGETS["int8"], POSE_BUDGETS["int8"]]
    assert DRAWN_POSE_BUDGETS["int8"] != POSE_BUDGETS["int8"]  # else this test could not fail
    with pytest.raises(ValueError, match=r"^1 pose references for 2 crop sets$"):
        run_pose_verdicts(
            TinyPose(), FakeSession(), (drawn, photos), (2,), precision="int8", torch_device=CPU,
            spec=XS, references=[coords_by_hand(photos.images)],
        )  # fmt: skip


def test_fresh_seeds_are_drawn_below_two_to_the_31_minus_one(monkeypatch) -> None:
    # randbelow(n) draws 0 .. n - 1: the largest fresh seed is 2**31 - 2
    monkeypatch.setattr(judge.secrets, "randbelow", lambda n: n - 1)
    assert resolve_seed(None) == 2**31 - 2


def test_depth_in_millimetres_follows_the_variant_box() -> None:
    from dataclasses import replace

    # one depth bin is the box depth / depth_dim: 4000 / 32 = 125 mm on a 4 m deep box
    deep = replace(XS, bbox_3d_shape_mm=(2000, 2000, 4000))
    crops = _crops(1)
    coords = np.zeros((1, 18, 3))
    coords[0, :, 0:2] = 16.0  # the box centre: (u, v) = (132, 82)
    farther = coords.copy()
    farther[0, :, 2] += 1.0
    moved = judge.crops_to_mm(farther, crops, deep) - judge.crops_to_mm(coords, crops, deep)
    ray = np.array([(132 - 500) / 1000, (82 - 400) / 1200, 1.0])  # X, Y scale with Z
    np.testing.assert_allclose(moved[0, 0], 125.0 * ray, rtol=1e-12)
