"""Independent oracles: OpenCV for the camera, joint names for the flip pairs, hand arithmetic
for preprocessing and metrics. None of the expected values comes from the code under test."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from converter.core.variants import FLIP_PAIRS, JOINT_NAMES, get_variant
from converter.evaluation.evaluate import predict
from converter.h36m.dataset import camera_to_pixel, load_dataset, world_to_camera
from converter.h36m.metrics import joint_errors, scored_poses
from converter.h36m.preprocess import crop_patch, normalize_patch, process_bbox
from converter.h36m.synthetic import make_synthetic_h36m

XS = get_variant("XS")

# Human3.6M camera 54138969 (subject 1) as published: orientation quaternion (w, x, y, z),
# position in world mm, focal length and principal point in pixels.
H36M_QUATERNION = (0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088)
H36M_POSITION = np.array([1841.1070556640625, 4955.28466796875, 1563.4454345703125])
H36M_FOCAL = (1145.0494384765625, 1143.7811279296875)
H36M_CENTER = (512.54150390625, 515.4514770507812)


def _h36m_extrinsics() -> tuple[np.ndarray, np.ndarray]:
    """R, t with joint_cam = R·X + t, from the published orientation and position."""
    w, x, y, z = H36M_QUATERNION
    camera_to_world = Rotation.from_quat([x, y, z, w]).as_matrix()
    rotation = camera_to_world.T
    return rotation, -rotation @ H36M_POSITION


def test_world_to_pixel_matches_opencv_with_a_published_camera() -> None:
    rotation, translation = _h36m_extrinsics()
    rng = np.random.default_rng(3)
    world = rng.uniform([-800, -800, 0], [800, 800, 1800], size=(50, 3))  # people in the room
    cam = world_to_camera(world, rotation, translation)
    expected_cam = cv2.transform(
        world.reshape(-1, 1, 3), np.hstack([rotation, translation[:, None]])
    )
    np.testing.assert_allclose(cam, expected_cam.reshape(-1, 3), atol=1e-6)
    assert (cam[:, 2] > 1000).all()  # in front of the camera
    rvec, _ = cv2.Rodrigues(rotation)
    matrix = np.array([[H36M_FOCAL[0], 0, H36M_CENTER[0]], [0, H36M_FOCAL[1], H36M_CENTER[1]],
                       [0, 0, 1.0]])  # fmt: skip
    pixels, _ = cv2.projectPoints(world.reshape(-1, 1, 3), rvec, translation, matrix, None)
    got = camera_to_pixel(cam, H36M_FOCAL, H36M_CENTER)
    np.testing.assert_allclose(got, pixels.reshape(-1, 2), atol=1e-4)
    # The transposed convention lands far away: the check above can tell them apart.
    wrong = camera_to_pixel(world @ rotation + translation, H36M_FOCAL, H36M_CENTER)
    assert np.abs(wrong - pixels.reshape(-1, 2)).max() > 50


def _pairs_from_names(names: tuple[str, ...]) -> set[frozenset[int]]:
    """Every L_* joint with its R_* twin, and nothing else."""
    index = {name: i for i, name in enumerate(names)}
    return {
        frozenset((i, index["R_" + name[2:]])) for i, name in enumerate(names) if name[:2] == "L_"
    }


def test_flip_pairs_are_exactly_the_left_right_twins() -> None:
    derived = _pairs_from_names(JOINT_NAMES)
    assert len(derived) == 6
    assert {frozenset(p) for p in FLIP_PAIRS} == derived
    assert len(FLIP_PAIRS) == len(derived)  # no duplicates either


class _MirrorEquivariant:
    """A perfect network: on the mirrored image it answers the mirrored pose with left and right
    swapped (by name), so the flip test must give back exactly its plain answer."""

    def __init__(self, images: np.ndarray, coords: np.ndarray, width: int) -> None:
        self.images, self.coords = images, coords
        mirrored = coords.copy()
        mirrored[..., 0] = width - 1 - coords[..., 0]
        for a, b in (tuple(p) for p in _pairs_from_names(JOINT_NAMES)):
            mirrored[:, [a, b]] = mirrored[:, [b, a]]
        self.mirrored = mirrored

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if np.array_equal(images, self.images):
            return self.coords
        assert np.array_equal(images, self.images[..., ::-1])
        return self.mirrored


def test_flip_test_is_exact_with_the_right_pairs_and_wrong_with_others() -> None:
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 3, 8, 8)).astype(np.float32)
    coords = rng.uniform(0, 31, size=(3, 18, 3))
    backend = _MirrorEquivariant(images, coords, XS.heatmap_hw[1])
    np.testing.assert_allclose(predict(backend, images, XS, flip=True), coords, atol=1e-12)
    wrong = XS.__class__(**{**XS.__dict__, "flip_pairs": ((1, 4), (2, 6), (3, 5), (14, 11),
                                                          (15, 12), (16, 13))})  # fmt: skip
    assert np.abs(predict(backend, images, wrong, flip=True) - coords).max() > 1.0
    dropped = XS.__class__(**{**XS.__dict__, "flip_pairs": FLIP_PAIRS[:-1]})
    assert np.abs(predict(backend, images, dropped, flip=True) - coords).max() > 1.0


def test_normalization_by_hand() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, :] = (10, 20, 30)  # B, G, R
    out = normalize_patch(image, XS)
    # RGB = (30, 20, 10); ImageNet mean/std in RGB order, on 0..255 values (no /255).
    assert out.shape == (3, 4, 4)
    np.testing.assert_allclose(out[:, 0, 0], [(30 - 0.485) / 0.229, (20 - 0.456) / 0.224,
                                              (10 - 0.406) / 0.225], rtol=1e-6)  # fmt: skip


def test_affine_crop_against_an_explicit_warp() -> None:
    # A smooth image, so bilinear sampling is well defined; the crop of box (60, 40, 100, 100)
    # to 256x256 samples source (110 + (u - 128) * 100/256, 90 + (v - 128) * 100/256).
    ys, xs = np.mgrid[0:300, 0:300].astype(np.float64)
    image = np.stack([xs * 0.5, ys * 0.7, (xs + ys) * 0.3], axis=-1).clip(0, 255).astype(np.uint8)
    patch = crop_patch(image, (60.0, 40.0, 100.0, 100.0), (256, 256)).astype(np.float64)
    v, u = np.mgrid[0:256, 0:256].astype(np.float64)
    sx, sy = 110 + (u - 128) * 100 / 256, 90 + (v - 128) * 100 / 256
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    img = image.astype(np.float64)
    expected = (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
                + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)  # fmt: skip
    assert np.abs(patch - expected).max() <= 1.5  # OpenCV's fixed-point bilinear rounding


def test_process_bbox_by_hand() -> None:
    # 100x50 box at (10, 20) in a 1000x1000 image: x2 = 10 + 99, y2 = 20 + 49 (the reference's
    # w - 1), so 99x49 centred at (59.5, 44.5), widened to a 99x99 square there, then x1.25.
    x, y, w, h = process_bbox([10, 20, 100, 50], 1000, 1000)
    assert (w, h) == pytest.approx((99 * 1.25, 99 * 1.25))
    assert (x + w / 2, y + h / 2) == pytest.approx((10 + 99 / 2, 20 + 49 / 2))


def test_known_scale_error_gives_the_analytic_mpjpe() -> None:
    rng = np.random.default_rng(4)
    gt = rng.normal(0, 300, size=(5, 18, 3))
    relative = gt - gt[:, :1]
    pred = gt[:, :1] + 1.1 * relative  # 10 % too large about the root
    pred_p2, gt_p2 = scored_poses(pred, gt, 0, protocol=2)
    expected = 0.1 * np.linalg.norm(relative[:, :17], axis=-1).mean()
    assert joint_errors(pred_p2, gt_p2, range(17)).mean() == pytest.approx(expected)


def test_protocol_1_fits_on_all_joints_thorax_included() -> None:
    rng = np.random.default_rng(8)
    gt = rng.normal(0.0, 300.0, size=(1, 18, 3))
    pred = gt.copy()
    pred[0, 17] += (400.0, -300.0, 200.0)  # only the (unscored) Thorax is off
    pred_p1, gt_p1 = scored_poses(pred, gt, 0, protocol=1)
    # Independent fit with scipy on all 18 root-relative joints.
    p, g = pred[0] - pred[0, 0], gt[0] - gt[0, 0]
    pc, gc = p - p.mean(0), g - g.mean(0)
    rotation, _ = Rotation.align_vectors(gc, pc)
    aligned = rotation.apply(pc) + g.mean(0)
    expected = np.linalg.norm(aligned[:17] - g[:17], axis=-1).mean()
    got = joint_errors(pred_p1, gt_p1, range(17)).mean()
    assert expected > 1.0 and got == pytest.approx(expected, rel=1e-6)


def test_kaggle_i6_spelling_is_found(tmp_path: Path) -> None:
    root = tmp_path / "kaggle"
    make_synthetic_h36m(root, "kaggle")
    for subject in (9, 11):
        shutil.move(root / f"S{subject}_ACT2_16", root / f"S{subject}_ACT2_i6")
    dataset = load_dataset(root, 2)
    assert dataset.layout.name == "kaggle" and len(dataset.samples) == 93
    assert all("ACT2_i6" in str(s.image_path) and s.image_path.is_file() for s in dataset.samples)


def test_back_projection_by_hand_with_a_tall_box_and_unequal_focals() -> None:
    from converter.h36m.metrics import back_project, to_heatmap_units

    coords = np.array([[[16.0, 8.0, 24.0]]])  # x, y heatmap pixels of 32; z = 24 of 32 bins
    box = np.array([[100.0, 200.0, 64.0, 128.0]])  # x, y, w, h: not square
    root, focal, centre = (
        np.array([5000.0]),
        np.array([[1000.0, 1200.0]]),
        np.array([[500.0, 400.0]]),
    )
    # u = 16/32*64 + 100 = 132, v = 8/32*128 + 200 = 232; z = (24/32*2 - 1)*1000 + 5000 = 5500
    # X = (132 - 500)/1000*5500 = -2024, Y = (232 - 400)/1200*5500 = -770
    camera = back_project(coords, box, root, focal, centre, (32, 32), 32)
    np.testing.assert_allclose(camera[0, 0], [-2024.0, -770.0, 5500.0], atol=1e-9)
    back = to_heatmap_units(camera, box, root, focal, centre, (32, 32), 32)
    np.testing.assert_allclose(back, coords, atol=1e-9)


def test_rigid_alignment_of_a_mirror_image_is_the_best_rotation() -> None:
    from converter.h36m.metrics import rigid_align

    rng = np.random.default_rng(12)
    target = rng.normal(0, 300, size=(1, 18, 3))
    source = target * np.array([-1.0, 1.0, 1.0])  # a reflection: no rotation maps it exactly
    aligned = rigid_align(source, target)[0]
    s, t = source[0] - source[0].mean(0), target[0] - target[0].mean(0)
    best, _ = Rotation.align_vectors(t, s)  # scipy: the best proper rotation
    expected = best.apply(s) + target[0].mean(0)
    np.testing.assert_allclose(aligned, expected, atol=1e-6)
