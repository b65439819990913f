"""Image -> network input, exactly as the reference test loader does it (facts §1.6, §4.4).

BGR read ignoring EXIF orientation, an affine crop of the box to the input size (OpenCV's
three-point solver and warp, bilinear, constant-0 border), BGR -> RGB, float32, then
(x - mean) / std per channel on values in 0..255: the released weights expect no division by 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from converter.core.errors import DatasetError
from converter.core.variants import VariantSpec

# Colour, and never rotate by EXIF: the annotations are in the sensor's pixel frame.
IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def read_bgr(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR, or a DatasetError naming the file."""
    image = cv2.imread(str(path), IMREAD_FLAGS)
    if image is None:
        raise DatasetError(f"{path}: cannot be read as an image")
    return image


def crop_transform(bbox: Sequence[float], out_hw: tuple[int, int]) -> np.ndarray:
    """2×3 matrix mapping the box onto the patch: centre, half-height down, half-width right."""
    x, y, w, h = (float(v) for v in bbox)
    out_h, out_w = out_hw
    cx, cy = x + 0.5 * w, y + 0.5 * h
    src = np.array([[cx, cy], [cx, cy + 0.5 * h], [cx + 0.5 * w, cy]], dtype=np.float32)
    dst = np.array(
        [[0.5 * out_w, 0.5 * out_h], [0.5 * out_w, float(out_h)], [float(out_w), 0.5 * out_h]],
        dtype=np.float32,
    )
    return cv2.getAffineTransform(src, dst)


def crop_patch(image_bgr: np.ndarray, bbox: Sequence[float], out_hw: tuple[int, int]) -> np.ndarray:
    """The box warped to out_hw, still BGR uint8 (the reference crops before the channel flip)."""
    out_h, out_w = out_hw
    return cv2.warpAffine(
        image_bgr,
        crop_transform(bbox, out_hw),
        (out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def normalize_patch(patch_bgr: np.ndarray, spec: VariantSpec) -> np.ndarray:
    """(H, W, 3) BGR uint8 -> (3, H, W) float32 RGB, (x - mean) / std with x in 0..255."""
    rgb = patch_bgr[:, :, ::-1].astype(np.float32)
    mean = np.asarray(spec.pixel_mean, dtype=np.float32)
    std = np.asarray(spec.pixel_std, dtype=np.float32)
    return np.ascontiguousarray(((rgb - mean) / std).transpose(2, 0, 1))


def load_input(path: str | Path, bbox: Sequence[float], spec: VariantSpec) -> np.ndarray:
    """One image file and box -> the (3, H, W) float32 network input."""
    return normalize_patch(crop_patch(read_bgr(path), bbox, spec.input_hw), spec)
