"""A small, deterministic Human3.6M stand-in in exactly the reference annotation format.

Real Human3.6M cannot be shipped, so tests and the demo use this: subjects 9 and 11, two actions
(Directions, Walking), two sub-actions, four cameras, three test frames per sequence (frame_idx
0, 64, 128) plus one annotated non-test frame (32, no image, as it would be filtered out). Like the
real data, sequence s_11_act_02_subact_02_ca_01 is absent (facts §4.7).

* 3D poses: an articulated skeleton with an adult's segment lengths, in world millimetres
  (z up), walking or standing and pointing, different in every frame.
* Cameras: Human3.6M's published intrinsics (f ≈ 1145, c ≈ (512, 515)), 1000×1002 images, four
  cameras about 5 m from the subject at head height looking at it; R is orthonormal and
  joint_cam = R·X + t, the convention of the current annotation files. Pixels come from OpenCV's
  projectPoints, not from the reader's own projection, so the reader is checked against an
  implementation it does not share.
* Images: JPEGs of the projected skeleton drawn over a textured background.
* Boxes: 1.2 × the extent of the 17 projected joints about their centre, like the real files.
* A RootNet-style file: processed GT boxes and pelvis positions with small seeded errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.atomic import make_output_dir, write_output
from ..core.choices import DATA_LAYOUTS as LAYOUTS
from ..core.variants import SKELETON, VariantSpec
from .crops import Crops
from .dataset import (
    ACTION_NAMES,
    KAGGLE_ANNOTATIONS,
    KAGGLE_SUBJECT_DIRS,
    TEST_SAMPLING,
)
from .preprocess import crop_patch, normalize_patch, process_bbox

SUBJECTS = (9, 11)
ACTIONS = (2, 14)  # Directions, Walking (action_idx, 2..16)
SUBACTIONS = (1, 2)
CAMERAS = (1, 2, 3, 4)
TEST_FRAMES = (0, TEST_SAMPLING, 2 * TEST_SAMPLING)
OTHER_FRAMES = (TEST_SAMPLING // 2,)  # annotated, never evaluated, so no image is written
ABSENT_SEQUENCE = (11, 2, 2, 1)  # (subject, action, subaction, camera), missing in the real set
IMAGE_SIZE = (1000, 1002)  # (width, height)
FPS = 50.0

BBOX_ROOT_FILE = Path("bbox_root") / "bbox_root_human36m_output.json"

# Human3.6M's published intrinsics for its four cameras: (fx, fy), (cx, cy).
INTRINSICS = {
    1: ((1145.04940459, 1143.78109572), (512.54150496, 515.45148698)),
    2: ((1149.67569987, 1147.59161370), (508.84847850, 508.06409912)),
    3: ((1149.14071162, 1148.79835860), (519.81583718, 501.40276874)),
    4: ((1145.51133842, 1144.77392808), (514.96819732, 501.88201537)),
}
BODY_SCALE = {9: 1.0, 11: 0.96}  # S11 is a little shorter

# Limb colours (BGR) for drawing: right side warm, left side cool, trunk grey.
_RIGHT, _LEFT, _TRUNK = (40, 60, 230), (230, 120, 40), (200, 200, 200)
_RIGHT_JOINTS, _LEFT_JOINTS = {1, 2, 3, 14, 15, 16}, {4, 5, 6, 11, 12, 13}


@dataclass(frozen=True)
class SyntheticSet:
    root: Path
    layout: str
    images: int  # JPEGs written (test frames)
    annotations: int  # annotated frames, test and non-test
    bbox_root: Path

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "images": self.images,
            "annotations": self.annotations,
            "bbox_root": str(self.bbox_root),
        }


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([20240, *key]))


def sequence_name(subject: int, action: int, subaction: int, camera: int) -> str:
    return f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{camera:02d}"


def image_file_name(subject: int, action: int, subaction: int, camera: int, frame: int) -> str:
    sequence = sequence_name(subject, action, subaction, camera)
    return f"{sequence}/{sequence}_{frame + 1:06d}.jpg"


# ---------------------------------------------------------------------------------------------
# Skeleton


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _limb(forward: np.ndarray, up: np.ndarray, side: np.ndarray, swing: float, spread: float):
    """Direction hanging down, swung forward by swing and out to side by spread (radians)."""
    hanging = -up * np.cos(swing) + forward * np.sin(swing)
    return _unit(hanging * np.cos(spread) + side * np.sin(spread))


def skeleton_world(subject: int, action: int, subaction: int, frame: int) -> np.ndarray:
    """(17, 3) joints in world mm, in the Human3.6M joint order."""
    s = BODY_SCALE[subject]
    t = frame / FPS
    rng = _rng(subject, action, subaction)
    start_heading = rng.uniform(-np.pi, np.pi)
    up = np.array([0.0, 0.0, 1.0])
    if ACTION_NAMES[action - 2] == "Walking":
        heading = start_heading + 0.15 * t
        phase = 2.0 * np.pi * t / 1.1 + rng.uniform(0, 2 * np.pi)
        leg, arm = 0.45 * np.sin(phase), -0.35 * np.sin(phase)
        travel = -1300.0 + 1000.0 * t  # 1 m/s, passing the middle of the room
        bob = 15.0 * np.cos(2 * phase)
        point = 0.0
    else:  # standing, turning a little, one arm raised to point
        heading = start_heading + 0.6 * np.sin(0.8 * t)
        phase = rng.uniform(0, 2 * np.pi)
        leg, arm = 0.05 * np.sin(phase + t), 0.1 * np.sin(phase + 2 * t)
        travel, bob = 0.0, 0.0
        point = 0.4 + 0.9 * (0.5 + 0.5 * np.sin(1.3 * t + phase))
    forward = np.array([np.cos(heading), np.sin(heading), 0.0])
    left = np.array([-np.sin(heading), np.cos(heading), 0.0])
    offset = rng.uniform(-300.0, 300.0, size=3) * np.array([1.0, 1.0, 0.0])
    pelvis = offset + forward * travel + up * (920.0 * s + bob)

    joints = np.zeros((17, 3))
    joints[0] = pelvis
    for hip_i, side, swing in ((1, -left, leg), (4, left, -leg)):  # right leg, left leg
        hip = pelvis + side * 125.0 * s - up * 10.0 * s
        knee_bend = 0.15 + 0.45 * max(0.0, -np.sin(swing * 3.0))
        knee = hip + 450.0 * s * _limb(forward, up, side, swing, 0.04)
        ankle = knee + 440.0 * s * _limb(forward, up, side, swing - knee_bend, 0.02)
        joints[hip_i : hip_i + 3] = hip, knee, ankle
    lean = 0.05 + 0.03 * np.sin(t)
    joints[7] = pelvis + 230.0 * s * _unit(up + lean * forward)  # Torso
    neck = joints[7] + 250.0 * s * _unit(up + lean * forward)
    joints[8] = neck
    joints[9] = neck + s * (115.0 * up + 75.0 * forward)  # Nose
    joints[10] = neck + s * (225.0 * up + 20.0 * forward)  # Head (top)
    for shoulder_i, side, swing in ((11, left, -arm), (14, -left, arm + point)):
        shoulder = neck + side * 150.0 * s - up * 25.0 * s
        elbow = shoulder + 280.0 * s * _limb(forward, up, side, swing, 0.15)
        wrist = elbow + 250.0 * s * _limb(forward, up, side, swing + 0.3 + 0.2 * point, 0.1)
        joints[shoulder_i : shoulder_i + 3] = shoulder, elbow, wrist
    return joints


# ---------------------------------------------------------------------------------------------
# Cameras


def camera_parameters(subject: int, camera: int) -> dict:
    """R, t, f, c of one camera: ~5 m from the room centre at head height, looking at it."""
    rng = _rng(subject, 100 + camera)
    azimuth = np.deg2rad(45.0 + 90.0 * (camera - 1) + rng.uniform(-8.0, 8.0))
    distance = rng.uniform(4700.0, 5400.0)
    centre = np.array(
        [distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(1500.0, 1800.0)]
    )
    target = np.array([0.0, 0.0, 1000.0]) + rng.uniform(-100.0, 100.0, size=3)
    z_axis = _unit(target - centre)  # optical axis
    x_axis = _unit(np.cross(z_axis, np.array([0.0, 0.0, 1.0])))  # image right
    y_axis = np.cross(z_axis, x_axis)  # image down
    rotation = np.stack([x_axis, y_axis, z_axis])
    focal, center = INTRINSICS[camera]
    return {
        "R": rotation.tolist(),
        "t": (-rotation @ centre).tolist(),
        "f": list(focal),
        "c": list(center),
    }


def project(world: np.ndarray, camera: dict) -> tuple[np.ndarray, np.ndarray]:
    """(17, 3) world mm -> (18, 3) camera mm and (18, 2) pixels, Thorax appended.

    The Thorax is the shoulders' midpoint (joints 11 and 14). Pixels by cv2.projectPoints with
    the camera's R (as a Rodrigues vector), t and pinhole matrix, no distortion.
    """
    world18 = np.concatenate([world, (world[11:12] + world[14:15]) / 2.0])
    rotation = np.asarray(camera["R"], dtype=np.float64)
    translation = np.asarray(camera["t"], dtype=np.float64).reshape(3, 1)
    (fx, fy), (cx, cy) = camera["f"], camera["c"]
    matrix = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    rvec, _ = cv2.Rodrigues(rotation)
    pixels, _ = cv2.projectPoints(world18.reshape(-1, 1, 3), rvec, translation, matrix, None)
    joints_cam = (rotation @ world18.T + translation).T
    return joints_cam, pixels.reshape(-1, 2)


# ---------------------------------------------------------------------------------------------
# Images


def _background(subject: int, camera: int) -> np.ndarray:
    """A textured 1000×1002 BGR background: smooth colour blobs, a floor, tiles and grain."""
    width, height = IMAGE_SIZE
    rng = _rng(subject, 200 + camera)
    coarse = rng.uniform(60, 200, size=(8, 8, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    horizon = int(height * rng.uniform(0.45, 0.6))
    image[horizon:] *= 0.6  # darker floor
    for y in range(horizon, height, 60):  # floor tiles
        cv2.line(image, (0, y), (width, y), (90, 90, 90), 2)
    for x in range(-width, 2 * width, 90):
        cv2.line(image, (width // 2 + (x - width // 2) // 3, horizon), (x, height), (90, 90, 90), 2)
    image += rng.normal(0.0, 5.0, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


Colour = tuple[float, float, float]


@dataclass(frozen=True)
class FigureStyle:
    """How a figure is drawn (BGR colours): right limbs warm, left cool, trunk grey."""

    right: Colour = _RIGHT
    left: Colour = _LEFT
    trunk: Colour = _TRUNK
    dots: Colour = (30, 220, 230)
    head: Colour = (160, 190, 220)
    head_scale: float = 2.2  # head disc radius, in limb thicknesses


def draw_figure(
    image: np.ndarray, joints_px: np.ndarray, thickness: int, style: FigureStyle = FigureStyle()
) -> None:
    """The stick figure of (17, 2) pixel joints, drawn into image in place."""
    points = [(round(float(p[0])), round(float(p[1]))) for p in joints_px]
    for a, b in SKELETON:
        if a in _RIGHT_JOINTS or b in _RIGHT_JOINTS:
            colour = style.right
        elif a in _LEFT_JOINTS or b in _LEFT_JOINTS:
            colour = style.left
        else:
            colour = style.trunk
        cv2.line(image, points[a], points[b], colour, thickness, cv2.LINE_AA)
    for point in points:
        cv2.circle(image, point, thickness, style.dots, -1, cv2.LINE_AA)
    head_radius = int(thickness * style.head_scale)
    cv2.circle(image, points[10], head_radius, style.head, -1, cv2.LINE_AA)


def _draw_person(image: np.ndarray, joints_px: np.ndarray, height_px: float) -> None:
    draw_figure(image, joints_px, max(3, int(height_px * 0.035)))


def _bbox_from_joints(joints_px: np.ndarray) -> list[float]:
    """1.2 × the extent of the projected joints, about their centre (as in the real files)."""
    low, high = joints_px.min(axis=0), joints_px.max(axis=0)
    centre, size = (low + high) / 2.0, (high - low) * 1.2
    return [float(centre[0] - size[0] / 2), float(centre[1] - size[1] / 2), *map(float, size)]


# ---------------------------------------------------------------------------------------------
# The set


def _paths(root: Path, layout: str) -> tuple[Path, dict[int, Path]]:
    if layout == "reference":
        return root / "annotations", {s: root / "images" for s in SUBJECTS}
    return root / KAGGLE_ANNOTATIONS, {
        s: root / KAGGLE_SUBJECT_DIRS[0].format(s=s) for s in SUBJECTS
    }


def make_synthetic_h36m(
    root: str | Path, layout: str = "reference", overwrite: bool = False
) -> SyntheticSet:
    """Write the set under root in the given layout; same content for every layout.

    Each file is published whole (core/atomic.py); without overwrite, an existing file is kept
    and refused (OutputExistsError). A place that cannot be written is an OutputError.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    root = Path(root)
    annotations_dir, image_roots = _paths(root, layout)
    make_output_dir(annotations_dir)
    image_id = annotation_id = 0
    images_written = annotations_total = 0
    rootnet: list[dict] = []
    for subject in SUBJECTS:
        images, annotations = [], []
        cameras = {str(c): camera_parameters(subject, c) for c in CAMERAS}
        joints_3d: dict[str, dict[str, dict[str, list]]] = {}
        backgrounds = {c: _background(subject, c) for c in CAMERAS}
        for action in ACTIONS:
            for subaction in SUBACTIONS:
                frames = {}
                for frame in sorted(TEST_FRAMES + OTHER_FRAMES):
                    # Rounded as written, so the JSON and the drawn picture agree exactly.
                    world = np.round(skeleton_world(subject, action, subaction, frame), 4)
                    frames[frame] = world
                joints_3d.setdefault(str(action), {})[str(subaction)] = {
                    str(f): j.tolist() for f, j in frames.items()
                }
                for camera in CAMERAS:
                    if (subject, action, subaction, camera) == ABSENT_SEQUENCE:
                        continue
                    cam = cameras[str(camera)]
                    noise = _rng(subject, action, subaction, camera)
                    for frame, world in frames.items():
                        image_id += 1
                        annotation_id += 1
                        file_name = image_file_name(subject, action, subaction, camera, frame)
                        joints_cam, joints_px = project(world, cam)
                        bbox = _bbox_from_joints(joints_px[:17])
                        images.append(
                            {
                                "id": image_id,
                                "file_name": file_name,
                                "width": IMAGE_SIZE[0],
                                "height": IMAGE_SIZE[1],
                                "subject": subject,
                                "action_name": ACTION_NAMES[action - 2],
                                "action_idx": action,
                                "subaction_idx": subaction,
                                "cam_idx": camera,
                                "frame_idx": frame,
                            }
                        )
                        annotations.append(
                            {
                                "id": annotation_id,
                                "image_id": image_id,
                                "keypoints_vis": [True] * 17,
                                "bbox": bbox,
                            }
                        )
                        if frame % TEST_SAMPLING:
                            continue
                        picture = backgrounds[camera].copy()
                        _draw_person(picture, joints_px[:17], bbox[3] / 1.2)
                        path = image_roots[subject] / file_name
                        make_output_dir(path.parent)
                        _, jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
                        write_output(path, jpeg.tobytes(), overwrite)
                        images_written += 1
                        rootnet.append(_rootnet_entry(image_id, bbox, joints_cam[0], noise))
        annotations_total += len(annotations)
        prefix = annotations_dir / f"Human36M_subject{subject}"
        data = {"images": images, "annotations": annotations}
        _write_json(Path(f"{prefix}_data.json"), data, overwrite)
        _write_json(Path(f"{prefix}_camera.json"), cameras, overwrite)
        _write_json(Path(f"{prefix}_joint_3d.json"), joints_3d, overwrite)
    bbox_root = root / BBOX_ROOT_FILE
    make_output_dir(bbox_root.parent)
    _write_json(bbox_root, rootnet, overwrite)
    return SyntheticSet(root, layout, images_written, annotations_total, bbox_root)


def _rootnet_entry(image_id: int, bbox: list[float], root: np.ndarray, rng) -> dict:
    """Like RootNet's output: a square, enlarged box and a pelvis estimate, both a bit off."""
    x, y, w, h = process_bbox(bbox, *IMAGE_SIZE)  # type: ignore[misc]
    size = w * (1.0 + rng.normal(0.0, 0.03))
    cx, cy = x + w / 2 + rng.normal(0.0, 4.0), y + h / 2 + rng.normal(0.0, 4.0)
    estimate = root + rng.normal(0.0, 1.0, size=3) * np.array([15.0, 15.0, 60.0])
    return {
        "image_id": image_id,
        "bbox": [cx - size / 2, cy - size / 2, size, size],
        "root_cam": estimate.tolist(),
    }


def _write_json(path: Path, payload: object, overwrite: bool) -> None:
    write_output(path, json.dumps(payload).encode("utf-8"), overwrite)


def evaluated_frames() -> list[tuple[int, int, int, int, int]]:
    """(subject, action, subaction, camera, frame) of every test frame that has an image."""
    return [
        (s, a, sa, c, f)
        for s in SUBJECTS
        for a in ACTIONS
        for sa in SUBACTIONS
        for c in CAMERAS
        for f in TEST_FRAMES
        if (s, a, sa, c) != ABSENT_SEQUENCE
    ]


def synthetic_crops(spec: VariantSpec, count: int, seed: int) -> Crops:
    """count of the set's test frames, drawn by seed, rendered in memory and cropped for real.

    The same pictures make_synthetic_h36m writes (before JPEG), through the reference box
    processing, affine crop and normalization.
    """
    frames = evaluated_frames()
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.permutation(len(frames))[: min(count, len(frames))])
    backgrounds: dict[tuple[int, int], np.ndarray] = {}
    images, boxes, roots, focals, centers = [], [], [], [], []
    aspect = spec.input_hw[1] / spec.input_hw[0]
    for index in chosen:
        subject, action, subaction, camera, frame = frames[int(index)]
        cam = camera_parameters(subject, camera)
        world = np.round(skeleton_world(subject, action, subaction, frame), 4)
        joints_cam, joints_px = project(world, cam)
        raw_box = _bbox_from_joints(joints_px[:17])
        key = (subject, camera)
        if key not in backgrounds:
            backgrounds[key] = _background(subject, camera)
        picture = backgrounds[key].copy()
        _draw_person(picture, joints_px[:17], raw_box[3] / 1.2)
        box = process_bbox(raw_box, *IMAGE_SIZE, aspect)
        assert box is not None  # the drawn people are well inside the frame
        images.append(normalize_patch(crop_patch(picture, box, spec.input_hw), spec))
        boxes.append(box)
        roots.append(joints_cam[0, 2])
        focals.append(cam["f"])
        centers.append(cam["c"])
    return Crops(
        images=np.stack(images),
        boxes=np.array(boxes, dtype=np.float64),
        root_depths=np.array(roots, dtype=np.float64),
        focals=np.array(focals, dtype=np.float64),
        centers=np.array(centers, dtype=np.float64),
        source=f"{len(images)} synthetic Human3.6M test frames",
        drawn=True,
    )
