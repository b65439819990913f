"""PosePredictor on the released XS graph: its joints against PyTorch through a crop written here by
hand, against joints labelled by eye, and its 3D against the pinhole model computed here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from converter.checkpoints.canonical import build_loaded_model
from converter.checkpoints.released import load_released
from converter.core.errors import OnnxModelError, UsageError, VariantMismatchError
from converter.h36m.photos import photo_paths
from converter.prediction import predictor as predictor_module
from converter.prediction.predictor import MAX_BOX_SIDE_RATIO, Camera, PosePredictor, check_box

LABELS = Path(__file__).parents[1] / "data" / "photo_joints.json"
# The reference's normalization constants (ImageNet mean and std on 0..255 values, no /255).
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
# Where the photos sit on a grey canvas: three people in one picture, boxes inside each.
PLACES = ((10, 80), (290, 40), (570, 120))
CANVAS_HW = (400, 840)
BOXES = [(x + 30.0, y + 10.0, 196.0, 236.0) for x, y in PLACES]


@pytest.fixture(scope="module")
def released(onnx_cache):
    ckpt = load_released()
    return ckpt, onnx_cache.exported(ckpt)[0]


@pytest.fixture(scope="module")
def predictor(released) -> PosePredictor:
    return PosePredictor(released[1], device="cpu")


@pytest.fixture(scope="module")
def canvas() -> np.ndarray:
    picture = np.full((*CANVAS_HW, 3), 40, np.uint8)
    for (x, y), path in zip(PLACES, photo_paths(), strict=False):
        photo = cv2.imread(str(path))
        picture[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    return picture


def _processed_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    """The reference's box rule, written out: clip the corner, x2 = x1 + w - 1, square it
    about the centre (input aspect 1) and enlarge 1.25x."""
    x, y, w, h = box
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x1 + w - 1.0), min(height - 1.0, y1 + h - 1.0)
    side = 1.25 * max(x2 - x1, y2 - y1)
    cx, cy = x1 + (x2 - x1) / 2, y1 + (y2 - y1) / 2
    return (cx - side / 2, cy - side / 2, side, side)


def _torch_joints_by_hand(model, image: np.ndarray, box) -> np.ndarray:
    """A scale-and-shift crop of the box to 256 x 256, OpenCV's warp, the normalization, PyTorch,
    and the heatmap (32 x 32) back to image pixels by the inverse of that scale and shift."""
    x, y, side, _ = box
    scale = 256.0 / side
    matrix = np.array([[scale, 0.0, -scale * x], [0.0, scale, -scale * y]])
    # The same matrix as OpenCV's three-point solver gives for the box's centre and edges.
    cx, cy = x + side / 2, y + side / 2
    solved = cv2.getAffineTransform(
        np.float32([[cx, cy], [cx, cy + side / 2], [cx + side / 2, cy]]),
        np.float32([[128, 128], [128, 256], [256, 128]]),
    )
    assert np.allclose(solved, matrix, atol=1e-3)
    patch = cv2.warpAffine(image, matrix, (256, 256), flags=cv2.INTER_LINEAR, borderValue=0)
    rgb = patch[:, :, ::-1].astype(np.float64)
    tensor = torch.from_numpy(((rgb - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        coords = model(tensor)[0].numpy().astype(np.float64)
    in_crop = coords[:, :2] * (256 / 32)
    return in_crop / scale + np.array([x, y])


def test_2d_joints_equal_pytorch_through_a_crop_written_by_hand(
    released, predictor: PosePredictor, canvas: np.ndarray
) -> None:
    model = build_loaded_model(released[0])
    poses = predictor.predict(canvas, BOXES)
    assert len(poses) == 3
    for pose, box in zip(poses, BOXES, strict=True):
        by_hand = _processed_box(box, CANVAS_HW[1], CANVAS_HW[0])
        assert np.allclose(pose.crop_box, by_hand, atol=1e-9)
        expected = _torch_joints_by_hand(model, canvas, by_hand)
        assert np.abs(pose.joints_2d - expected).max() < 0.05  # pixels; the budget is 1 px


def test_whole_photos_land_on_the_joints_labelled_by_eye(predictor: PosePredictor) -> None:
    labels = json.loads(LABELS.read_text())
    errors = []
    for path in photo_paths():
        if path.name in labels:
            (pose,) = predictor.predict(cv2.imread(str(path)))
            assert pose.box is None and pose.crop_box == (0.0, 0.0, 256.0, 256.0)
            for name, point in labels[path.name].items():
                found = pose.joints_2d[predictor.spec.joint_names.index(name)]
                errors.append(np.hypot(*(found - point)))
    # As tests/h36m/test_photos.py: labels by eye are good to a few pixels, a head is ~30 px.
    assert len(errors) == 10 and max(errors) < 24.0 and np.mean(errors) < 12.0


def test_3d_joints_follow_the_pinhole_model(predictor: PosePredictor, canvas: np.ndarray) -> None:
    camera = Camera(focal=(1400.0, 1600.0), principal=(400.0, 210.0))
    depths = [4000.0, 5200.0, 6100.0]
    poses = predictor.predict(canvas, BOXES, depths, camera)
    for pose, depth in zip(poses, depths, strict=True):
        assert pose.camera_space and pose.root_depth_mm == depth
        z = depth + (pose.coords[:, 2] / 32 * 2 - 1) * 1000.0  # XS: 32 depth bins over 2000 mm
        u, v = pose.joints_2d[:, 0], pose.joints_2d[:, 1]
        expected = np.stack([(u - 400.0) / 1400.0 * z, (v - 210.0) / 1600.0 * z, z], axis=1)
        assert np.allclose(pose.joints_3d, expected, rtol=0, atol=1e-6)


def test_without_a_root_depth_the_pose_is_root_relative_at_the_box_scale(
    predictor: PosePredictor, canvas: np.ndarray
) -> None:
    camera = Camera()
    (pose,) = predictor.predict(canvas, BOXES[:1], camera=camera)
    assert not pose.camera_space and pose.root_depth_mm is None
    assert np.array_equal(pose.joints_3d[0], np.zeros(3))
    # The root stands where the box spans 2000 mm: Z0 = 2000 * fx / side.
    z0 = 2000.0 * 1500.0 / pose.crop_box[2]
    z = z0 + (pose.coords[:, 2] / 32 * 2 - 1) * 1000.0
    x = (pose.joints_2d[:, 0] - CANVAS_HW[1] / 2) / 1500.0 * z
    assert np.allclose(pose.joints_3d[:, 2], z - z[0], atol=1e-6)
    assert np.allclose(pose.joints_3d[:, 0], x - x[0], atol=1e-6)


def test_crops_run_in_chunks_give_the_same_joints(
    predictor: PosePredictor, canvas: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    together = predictor.predict(canvas, BOXES)
    monkeypatch.setattr(predictor_module, "MAX_CROPS_PER_RUN", 2)
    apart = predictor.predict(canvas, BOXES)
    for a, b in zip(together, apart, strict=True):
        assert np.allclose(a.joints_2d, b.joints_2d, atol=1e-4)


def test_a_fixed_batch_graph_is_fed_padded_batches(
    released, onnx_cache, predictor: PosePredictor, canvas: np.ndarray
) -> None:
    fixed = PosePredictor(onnx_cache.exported(released[0], batch=2)[0], device="cpu")
    assert fixed.fixed_batch == 2 and predictor.fixed_batch is None
    for a, b in zip(fixed.predict(canvas, BOXES), predictor.predict(canvas, BOXES), strict=True):
        assert np.allclose(a.joints_2d, b.joints_2d, atol=1e-4)


def _without_metadata(source: Path, out: Path) -> Path:
    model = onnx.load(str(source))
    del model.metadata_props[:]
    onnx.save(model, str(out))
    return out


def test_the_variant_comes_from_the_metadata_or_must_be_given(released, tmp_path: Path) -> None:
    with pytest.raises(VariantMismatchError, match="metadata says XS"):
        PosePredictor(released[1], variant="L", device="cpu")
    bare = _without_metadata(released[1], tmp_path / "bare.onnx")
    with pytest.raises(OnnxModelError, match="no cnp-convert metadata") as refused:
        PosePredictor(bare, device="cpu")
    assert refused.value.remedies[0][0] == "variant"
    assert PosePredictor(bare, variant="XS", device="cpu").spec.name == "XS"
    with pytest.raises(OnnxModelError, match="does not fit ConvNeXtPose-L"):
        PosePredictor(bare, variant="L", device="cpu")


def test_a_graph_without_coords_is_refused(released, tmp_path: Path) -> None:
    model = onnx.load(str(released[1]))
    for output in model.graph.output:
        if output.name == "coords":
            output.name = "joints"
    for node in model.graph.node:
        node.output[:] = ["joints" if name == "coords" else name for name in node.output]
    onnx.save(model, str(tmp_path / "renamed.onnx"))
    with pytest.raises(OnnxModelError, match="has no 'coords' output"):
        PosePredictor(tmp_path / "renamed.onnx", device="cpu")


class _FakeSession:
    """A session whose graph returns the given coords, whatever it is fed."""

    path = Path("fake.onnx")
    device, providers, fallback_reason, execution_precision = "cpu", ("CPU",), None, None
    input_name, input_shape, output_names = "image", ("N", 3, 256, 256), ("coords",)

    def __init__(self, coords: np.ndarray) -> None:
        self.coords = coords

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return {"coords": self.coords}


@pytest.mark.parametrize(
    ("coords", "message"),
    [
        (np.full((1, 18, 3), np.nan, np.float32), "54 NaN or infinite value"),
        (np.zeros((1, 17, 3), np.float32), "has 17 joints, ConvNeXtPose-XS has 18"),
        (np.zeros((2, 18, 3), np.float32), r"came out \[2, 18, 3\] for 1 images"),
        (np.zeros((1, 18), np.float32), r"came out \[1, 18\]"),
    ],
)
def test_outputs_that_are_not_joints_are_refused(
    released, canvas: np.ndarray, coords: np.ndarray, message: str
) -> None:
    from converter.evaluation.evaluate import OnnxBackend

    odd = PosePredictor(released[1], device="cpu")
    odd._backend = OnnxBackend(_FakeSession(coords))  # type: ignore[arg-type]
    with pytest.raises(OnnxModelError, match=message):
        odd.predict(canvas, BOXES[:1])


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 0, 50), "has no area"),
        ((10, 10, 50, -1), "has no area"),
        ((100, 10, 50, 50), "lies outside the 100x80 image"),
        ((-50, 10, 50, 50), "lies outside"),
        ((10, float("nan"), 50, 50), "four finite numbers"),
        ((10, 10, 50), "four finite numbers"),
        ((0, 0, MAX_BOX_SIDE_RATIO * 100 + 1, 10), "far larger than the 100x80 image"),
    ],
)
def test_boxes_that_hold_no_person_are_refused(box, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_box(box, 100, 80, "img.jpg")


def test_box_bounds_just_inside() -> None:
    assert check_box((99.5, 79.5, 1, 1), 100, 80, "img.jpg")
    assert check_box((-49, 0, 50, 10), 100, 80, "img.jpg")
    assert check_box((0, 0, MAX_BOX_SIDE_RATIO * 100, 10), 100, 80, "img.jpg")


def test_root_depths_must_be_one_per_person(predictor: PosePredictor, canvas: np.ndarray) -> None:
    with pytest.raises(UsageError, match="2 root depths for 3 people"):
        predictor.predict(canvas, BOXES, [4000.0, 5000.0])
    with pytest.raises(UsageError, match="positive distance"):
        predictor.predict(canvas, BOXES[:1], [-1.0])
    with pytest.raises(UsageError, match="focal lengths must be positive"):
        Camera(focal=(0.0, 1500.0))


def test_the_image_must_be_bgr_bytes(predictor: PosePredictor, canvas: np.ndarray) -> None:
    from converter.core.errors import DatasetError

    with pytest.raises(DatasetError, match="uint8 BGR"):
        predictor.predict(canvas.astype(np.float32))
    with pytest.raises(DatasetError, match="uint8 BGR"):
        predictor.predict(canvas[:, :, 0])


def test_the_graph_file_is_not_changed(released, tmp_path: Path) -> None:
    copy = shutil.copy(released[1], tmp_path / "g.onnx")
    before = Path(copy).read_bytes()
    PosePredictor(copy, device="cpu").predict(np.zeros((64, 48, 3), np.uint8))
    assert Path(copy).read_bytes() == before
