"""Procedurally drawn people for training: random poses, bodies, cameras, backgrounds, colours.

Each sample goes through the tool's own preprocessing (the reference box enlargement, the affine
crop, BGR -> RGB, no division by 255, mean/std) and carries the reference training targets: x, y in
heatmap pixels of the crop, z in depth bins of the root-relative depth over bbox_3d_shape.

The drawing style matches the synthetic Human3.6M set (a stick figure, right limbs warm, left
cool, trunk grey, a head disc), but every pose, body, camera, background and colour here is drawn
at random from a seeded generator, so the synthetic test set stays unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cnp_convert.core.variants import VariantSpec
from cnp_convert.h36m.preprocess import crop_patch, normalize_patch, process_bbox
from cnp_convert.h36m.synthetic import FigureStyle, draw_figure

IMAGE_SIZE = (1000, 1002)  # (width, height), as the Human3.6M frames
DEPTH_RANGE_MM = 2000.0  # bbox_3d_shape[0]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _limb(forward, up, side, swing: float, spread: float) -> np.ndarray:
    hanging = -up * np.cos(swing) + forward * np.sin(swing)
    return _unit(hanging * np.cos(spread) + side * np.sin(spread))


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """(17, 3) world millimetres (z up), Human3.6M joint order, feet near the floor."""
    s = rng.uniform(0.85, 1.15)
    heading = rng.uniform(-np.pi, np.pi)
    up = np.array([0.0, 0.0, 1.0])
    forward = np.array([np.cos(heading), np.sin(heading), 0.0])
    left = np.array([-np.sin(heading), np.cos(heading), 0.0])
    joints = np.zeros((17, 3))
    for hip_i, side in ((1, -left), (4, left)):
        swing = rng.uniform(-0.6, 0.9) if rng.random() < 0.7 else rng.uniform(-0.2, 0.2)
        bend = rng.uniform(0.0, 1.3) * rng.random()
        hip = side * 125.0 * s - up * 10.0 * s
        knee = hip + 450.0 * s * _limb(forward, up, side, swing, rng.uniform(-0.05, 0.35))
        ankle = knee + 440.0 * s * _limb(forward, up, side, swing - bend, rng.uniform(-0.05, 0.2))
        joints[hip_i : hip_i + 3] = hip, knee, ankle
    lean = _unit(up + rng.uniform(-0.15, 0.5) * forward + rng.uniform(-0.2, 0.2) * left)
    joints[7] = 230.0 * s * lean
    bend = _unit(lean + rng.uniform(-0.1, 0.3) * forward)
    neck = joints[7] + 250.0 * s * bend
    joints[8] = neck
    yaw = rng.uniform(-0.7, 0.7)
    face = np.cos(yaw) * forward + np.sin(yaw) * left
    nod = rng.uniform(-0.3, 0.4)
    joints[9] = neck + s * ((115.0 - 40 * nod) * bend + (75.0 + 30 * nod) * face)
    joints[10] = neck + s * (225.0 * bend + 20.0 * face)
    for shoulder_i, side in ((11, left), (14, -left)):
        swing = rng.uniform(-0.8, 2.9) if rng.random() < 0.6 else rng.uniform(-0.3, 0.4)
        spread = rng.uniform(0.0, 1.5) * rng.random()
        shoulder = neck + side * 150.0 * s - up * 25.0 * s
        elbow = shoulder + 280.0 * s * _limb(forward, up, side, swing, spread)
        fore = swing + rng.uniform(0.0, 2.0) * rng.random()
        wrist = elbow + 250.0 * s * _limb(forward, up, side, fore, spread * rng.uniform(0.3, 1.2))
        joints[shoulder_i : shoulder_i + 3] = shoulder, elbow, wrist
    floor = joints[[3, 6], 2].min() - 80.0 * s  # ankles ~8 cm above the floor
    offset = np.array([*rng.uniform(-600.0, 600.0, size=2), -floor])
    return joints + offset


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray  # (3, 3), joint_cam = R·X + t
    translation: np.ndarray  # (3,)
    focal: np.ndarray  # (2,)
    center: np.ndarray  # (2,)

    def to_camera(self, joints_world: np.ndarray) -> np.ndarray:
        return joints_world @ self.rotation.T + self.translation

    def to_pixels(self, joints_cam: np.ndarray) -> np.ndarray:
        return joints_cam[:, :2] / joints_cam[:, 2:3] * self.focal + self.center


def random_camera(rng: np.random.Generator, look_at: np.ndarray) -> Camera:
    azimuth = rng.uniform(-np.pi, np.pi)
    distance = rng.uniform(3500.0, 7000.0)
    centre = np.array(
        [distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(600.0, 2400.0)]
    )
    target = look_at + rng.normal(0.0, 250.0, size=3)
    z_axis = _unit(target - centre)
    roll = rng.normal(0.0, 0.03)
    x_axis = _unit(np.cross(z_axis, np.array([np.sin(roll), 0.0, np.cos(roll)])))
    y_axis = np.cross(z_axis, x_axis)
    rotation = np.stack([x_axis, y_axis, z_axis])
    f = rng.uniform(1050.0, 1250.0)
    focal = np.array([f, f * rng.uniform(0.995, 1.005)])
    center = np.array([IMAGE_SIZE[0] / 2, IMAGE_SIZE[1] / 2]) + rng.uniform(-25.0, 25.0, size=2)
    return Camera(rotation, -rotation @ centre, focal, center)


def random_background(rng: np.random.Generator) -> np.ndarray:
    """A 1000x1002 BGR room: colour blobs, a floor with tiles, grain (all parameters random)."""
    width, height = IMAGE_SIZE
    cells = int(rng.integers(3, 14))
    low = rng.uniform(0, 120)
    coarse = rng.uniform(low, low + rng.uniform(60, 135), size=(cells, cells, 3))
    image = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    horizon = int(height * rng.uniform(0.35, 0.7))
    image[horizon:] *= rng.uniform(0.45, 1.1)
    tile = tuple(float(v) for v in rng.uniform(40, 200, size=3))
    for y in range(horizon, height, int(rng.integers(30, 100))):
        cv2.line(image, (0, y), (width, y), tile, int(rng.integers(1, 4)))
    step = int(rng.integers(50, 160))
    for x in range(-width, 2 * width, step):
        cv2.line(image, (width // 2 + (x - width // 2) // 3, horizon), (x, height), tile, 2)
    for _ in range(int(rng.integers(0, 6))):  # clutter: boxes and discs
        colour = tuple(float(v) for v in rng.uniform(0, 255, size=3))
        p = rng.integers(0, [width, height])
        if rng.random() < 0.5:
            q = p + rng.integers(20, 250, size=2)
            cv2.rectangle(image, tuple(map(int, p)), tuple(map(int, q)), colour, -1)
        else:
            cv2.circle(image, tuple(map(int, p)), int(rng.integers(10, 120)), colour, -1)
    image += rng.normal(0.0, rng.uniform(1.0, 9.0), size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], spread: float) -> tuple:
    return tuple(float(np.clip(c + rng.uniform(-spread, spread), 0, 255)) for c in colour)


def draw_person(rng: np.random.Generator, image: np.ndarray, joints_px: np.ndarray) -> None:
    """The synthetic set's stick figure, with random thickness and colours around its scheme."""
    height_px = float(np.ptp(joints_px[:, 1])) + 1.0
    style = FigureStyle(
        right=_jitter(rng, (40, 60, 230), 40),
        left=_jitter(rng, (230, 120, 40), 40),
        trunk=_jitter(rng, (200, 200, 200), 50),
        dots=_jitter(rng, (30, 220, 230), 60),
        head=_jitter(rng, (160, 190, 220), 50),
        head_scale=rng.uniform(1.6, 2.8),
    )
    draw_figure(image, joints_px, max(2, int(height_px * rng.uniform(0.025, 0.045))), style)


def add_thorax(joints: np.ndarray) -> np.ndarray:
    return np.concatenate([joints, (joints[11:12] + joints[14:15]) / 2.0], axis=0)


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # (3, H, W) float32, the network input
    target: np.ndarray  # (18, 3) float32: x, y heatmap pixels, z depth bins
    valid: np.ndarray  # (18,) float32: 1 where the target lies inside the heatmap volume
    joints_cam: np.ndarray  # (18, 3) float64 camera millimetres


def draw_sample(rng: np.random.Generator, backgrounds: list[np.ndarray], spec: VariantSpec):
    """One training sample, or None when the person falls outside the frame (draw again)."""
    world = random_pose(rng)
    camera = random_camera(rng, world[0])
    joints_cam = add_thorax(camera.to_camera(world))
    if joints_cam[:, 2].min() < 500.0:
        return None
    pixels = camera.to_pixels(joints_cam)
    width, height = IMAGE_SIZE
    if pixels.min() < 5 or pixels[:, 0].max() > width - 5 or pixels[:, 1].max() > height - 5:
        return None
    image = backgrounds[int(rng.integers(len(backgrounds)))]
    image = image[:, ::-1].copy() if rng.random() < 0.5 else image.copy()
    draw_person(rng, image, pixels[:17])
    # The box as the annotation files give it (1.2x the joints' extent), jittered in scale and
    # position the way a detector would be, then the reference enlargement.
    low, high = pixels[:17].min(axis=0), pixels[:17].max(axis=0)
    size = (high - low) * 1.2 * rng.uniform(0.9, 1.12)
    centre = (low + high) / 2.0 + rng.normal(0.0, 0.04, size=2) * size
    box = process_bbox([*(centre - size / 2), *size], width, height)
    if box is None:
        return None
    patch = crop_patch(image, box, spec.input_hw)
    gain = rng.uniform(0.75, 1.25, size=3) * rng.uniform(0.7, 1.3)
    patch = np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    hm_h, hm_w = spec.heatmap_hw
    x = (pixels[:, 0] - box[0]) / box[2] * hm_w
    y = (pixels[:, 1] - box[1]) / box[3] * hm_h
    relative = joints_cam[:, 2] - joints_cam[0, 2]
    z = (relative / (DEPTH_RANGE_MM / 2.0) + 1.0) / 2.0 * spec.depth_dim
    target = np.stack([x, y, z], axis=1).astype(np.float32)
    valid = (
        (x >= 0) & (x < hm_w) & (y >= 0) & (y < hm_h) & (z >= 0) & (z < spec.depth_dim)
    ).astype(np.float32)
    return Sample(normalize_patch(patch, spec), target, valid, joints_cam)
