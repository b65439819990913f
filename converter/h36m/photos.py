"""Real person photos as network inputs: the official sample crops, mirrored, scaled and rotated.

The verdicts judge a reduced precision on real pixels, not only on drawn figures: a trained
network's activations on photos are what a deployment sees. The four crops ship in
``converter/h36m/photos/`` (MIT, the ConvNeXtPose authors; see its README).

Each photo is a person crop, so its whole frame is the box. The augmentations stay within the
reference training augmentation (3DMPPE/ConvNeXtPose data loader: scale 1 ± 0.25, rotation
within ±30° for most samples, horizontal mirror), so every crop is one the network could have
been trained on.

There is no camera for a photo: the crops are mapped to millimetres with a box that spans the
reference's 2000 mm 3D box (focal 1500 px, the official demo's, and the root depth that makes
the box 2000 mm wide), so one heatmap unit is the same number of millimetres on x, y and z.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ..core.variants import VariantSpec
from .crops import Crops
from .preprocess import normalize_patch, read_bgr

PHOTO_DIR = Path(__file__).with_name("photos")
PHOTO_NAMES = ("00000.png", "00001.png", "00002.png", "00003.png")
PHOTO_FOCAL_PX = 1500.0  # the official demo's focal length
BOX_SPAN_MM = 2000.0  # the reference's bbox_3d_shape: what a box's width stands for

# (scale, rotation in degrees) per photo and mirror: the identity, then the corners of the
# reference augmentation (scale 0.75-1.25, rotation +-30) and two in between.
AUGMENTATIONS = (
    (1.0, 0.0),
    (0.75, 0.0),
    (1.25, 0.0),
    (1.0, 30.0),
    (1.0, -30.0),
    (0.85, 15.0),
    (1.15, -15.0),
)


def photo_paths() -> list[Path]:
    return [PHOTO_DIR / name for name in PHOTO_NAMES]


def augmented_transform(
    box: tuple[float, float, float, float],
    out_hw: tuple[int, int],
    scale: float,
    rotation_deg: float,
) -> np.ndarray:
    """The reference's training crop matrix: the box scaled and rotated about its centre."""
    x, y, w, h = box
    out_h, out_w = out_hw
    cx, cy = x + 0.5 * w, y + 0.5 * h
    w, h = w * scale, h * scale
    angle = math.radians(rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)

    def turned(dx: float, dy: float) -> list[float]:
        return [cx + dx * cos - dy * sin, cy + dx * sin + dy * cos]

    src = np.array([[cx, cy], turned(0.0, 0.5 * h), turned(0.5 * w, 0.0)], dtype=np.float32)
    dst = np.array(
        [[0.5 * out_w, 0.5 * out_h], [0.5 * out_w, float(out_h)], [float(out_w), 0.5 * out_h]],
        dtype=np.float32,
    )
    return cv2.getAffineTransform(src, dst)


def augmented_patch(
    image_bgr: np.ndarray,
    out_hw: tuple[int, int],
    scale: float = 1.0,
    rotation_deg: float = 0.0,
    mirror: bool = False,
) -> np.ndarray:
    """The whole image as the box, mirrored first (as the reference flips before cropping)."""
    if mirror:
        image_bgr = image_bgr[:, ::-1]
    h, w = image_bgr.shape[:2]
    matrix = augmented_transform((0.0, 0.0, float(w), float(h)), out_hw, scale, rotation_deg)
    out_h, out_w = out_hw
    return cv2.warpAffine(
        np.ascontiguousarray(image_bgr),
        matrix,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def photo_crops(spec: VariantSpec) -> Crops:
    """Every photo x {as is, mirrored} x AUGMENTATIONS: 56 real crops, in a fixed order."""
    images = []
    for path in photo_paths():
        picture = read_bgr(path)
        for mirror in (False, True):
            for scale, rotation in AUGMENTATIONS:
                patch = augmented_patch(picture, spec.input_hw, scale, rotation, mirror)
                images.append(normalize_patch(patch, spec))
    count = len(images)
    side = float(spec.input_hw[1])
    box = np.array([0.0, 0.0, side, side])
    return Crops(
        images=np.stack(images),
        boxes=np.tile(box, (count, 1)),
        root_depths=np.full(count, BOX_SPAN_MM * PHOTO_FOCAL_PX / side),
        focals=np.full((count, 2), PHOTO_FOCAL_PX),
        centers=np.full((count, 2), side / 2.0),
        source=f"{count} crops of {len(PHOTO_NAMES)} real photos (mirrored, scaled, rotated)",
    )


def random_photo_inputs(spec: VariantSpec, count: int, seed: int) -> np.ndarray:
    """(count, 3, H, W) network inputs drawn as the reference trains: scale N(1, 0.25) clipped
    to 0.75-1.25, rotation N(0, 30) clipped to +-60 on 60 % of crops, a mirror on half, colour
    x0.8-1.2 per channel. For fitting and calibrating, apart from photo_crops' fixed list."""
    rng = np.random.default_rng(seed)
    pictures = [read_bgr(path) for path in photo_paths()]
    images = []
    for index in range(count):
        picture = pictures[index % len(pictures)]
        scale = float(np.clip(rng.normal(1.0, 0.25), 0.75, 1.25))
        rotation = float(np.clip(rng.normal(0.0, 30.0), -60, 60)) if rng.random() < 0.6 else 0.0
        patch = augmented_patch(picture, spec.input_hw, scale, rotation, bool(rng.random() < 0.5))
        gain = rng.uniform(0.8, 1.2, size=3)
        patch = np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        images.append(normalize_patch(patch, spec))
    return np.stack(images)
