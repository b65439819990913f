"""Pictures of predictions on people's own images: the 2D skeletons drawn on the picture, and
each person's 3D pose from two fixed viewpoints.

Right limbs red, left limbs blue, the trunk green (the names in the legend say which joint is
which side); every line has a dark outline so it shows on any clothing or background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..core.variants import SKELETON, VariantSpec
from ..evaluation.visualize import OUTLINE, pixel_point, put_label
from .predictor import PersonPose

RIGHT_COLOUR, LEFT_COLOUR, TRUNK_COLOUR = (40, 40, 255), (255, 140, 30), (60, 220, 60)  # BGR
RIGHT_PREFIX, LEFT_PREFIX = "R_", "L_"
BOX_COLOUR = (200, 200, 200)
LONG_SIDE_RANGE = (512, 1280)  # pictures are scaled so their long side falls in this range
VIEW_SIDE = 340
VIEW_RANGE_MM = 1100.0  # a 3D view shows +-this much around the root
FLOOR_MM = 1000.0  # the floor grid's half-width
GRID_MM = 500.0
# (title, azimuth about the vertical axis, elevation), degrees: the camera's own view, then a
# turned view from a little above, where depth shows.
VIEWS = (("front (camera) view", 0.0, 0.0), ("turned 60 deg, from above", 60.0, 20.0))


def joint_colour(name: str) -> tuple[int, int, int]:
    if name.startswith(RIGHT_PREFIX):
        return RIGHT_COLOUR
    if name.startswith(LEFT_PREFIX):
        return LEFT_COLOUR
    return TRUNK_COLOUR


def limb_colour(spec: VariantSpec, a: int, b: int) -> tuple[int, int, int]:
    """A limb is a side's if either end is (a hip joins the pelvis to the right leg)."""
    for name in (spec.joint_names[a], spec.joint_names[b]):
        if name.startswith((RIGHT_PREFIX, LEFT_PREFIX)):
            return joint_colour(name)
    return TRUNK_COLOUR


def draw_pose(image: np.ndarray, points: np.ndarray, spec: VariantSpec, thickness: int) -> None:
    pts = [pixel_point(p) for p in points]
    for a, b in SKELETON:
        cv2.line(image, pts[a], pts[b], OUTLINE, thickness + 2, cv2.LINE_AA)
        cv2.line(image, pts[a], pts[b], limb_colour(spec, a, b), thickness, cv2.LINE_AA)
    drawn = {j for limb in SKELETON for j in limb}  # the Thorax is not part of the skeleton
    for j in sorted(drawn):
        cv2.circle(image, pts[j], thickness + 1, OUTLINE, -1, cv2.LINE_AA)
        cv2.circle(image, pts[j], thickness, (255, 255, 255), -1, cv2.LINE_AA)


def _legend(width: int, spec: VariantSpec, heading: str) -> np.ndarray:
    """A heading, then every drawn joint's name in its side's colour, wrapped to width."""
    lines: list[list[tuple[str, tuple[int, int, int]]]] = [[]]
    used = 10
    drawn = {j for limb in SKELETON for j in limb}
    for j, name in enumerate(spec.joint_names):
        if j not in drawn:
            continue
        size = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] + 14
        if used + size > width and lines[-1]:
            lines.append([])
            used = 10
        lines[-1].append((name, joint_colour(name)))
        used += size
    strip = np.full((34 + 22 * len(lines), width, 3), 20, np.uint8)
    put_label(strip, heading, (10, 22), (235, 235, 235), 0.55)
    for row, entries in enumerate(lines):
        x = 10
        for name, colour in entries:
            x = put_label(strip, name, (x, 48 + 22 * row), colour, 0.45) + 14
    return strip


def _scale_for(width: int, height: int) -> float:
    low, high = LONG_SIDE_RANGE
    long_side = max(width, height)
    return low / long_side if long_side < low else min(1.0, high / long_side)


def picture_2d(image_bgr: np.ndarray, poses: Sequence[PersonPose], spec: VariantSpec) -> np.ndarray:
    """The picture with every person's box (the one the network saw, dashed-grey) and 2D
    skeleton, numbered as in the JSON, over a legend of the joints."""
    height, width = image_bgr.shape[:2]
    scale = _scale_for(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = cv2.resize(image_bgr, size, interpolation=interpolation)
    thickness = max(2, round(max(size) / 300))
    for number, pose in enumerate(poses, start=1):
        x, y, w, h = (v * scale for v in pose.crop_box)
        cv2.rectangle(canvas, pixel_point((x, y)), pixel_point((x + w, y + h)), BOX_COLOUR, 1)
        draw_pose(canvas, pose.joints_2d * scale, spec, thickness)
        put_label(canvas, f"#{number}", pixel_point((x + 4, y + 18)), (255, 255, 255), 0.5)
    people = "1 person" if len(poses) == 1 else f"{len(poses)} people"
    heading = f"ConvNeXtPose-{spec.name}: {people}; right limbs red, left blue"
    return np.vstack([_legend(canvas.shape[1], spec, heading), canvas])


def view_points(joints_mm: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    """Root-relative camera mm (x right, y down, z away) -> (J, 2) panel pixels, orthographic,
    turned by azimuth about the vertical axis and seen from elevation degrees above."""
    a, e = math.radians(azimuth), math.radians(elevation)
    x, y, z = joints_mm[:, 0], joints_mm[:, 1], joints_mm[:, 2]
    turned_x = x * math.cos(a) + z * math.sin(a)
    turned_z = -x * math.sin(a) + z * math.cos(a)
    screen_y = y * math.cos(e) - turned_z * math.sin(e)
    scale = VIEW_SIDE / (2 * VIEW_RANGE_MM)
    return np.stack([VIEW_SIDE / 2 + turned_x * scale, VIEW_SIDE / 2 + screen_y * scale], axis=1)


def _view(joints_mm: np.ndarray, spec: VariantSpec, title: str, azimuth: float, elevation: float):
    panel = np.full((VIEW_SIDE, VIEW_SIDE, 3), 32, np.uint8)
    floor = float(joints_mm[:, 1].max())  # under the lowest joint
    ticks = np.arange(-FLOOR_MM, FLOOR_MM + 1, GRID_MM)
    for tick in ticks:
        for start, end in (
            ((tick, floor, -FLOOR_MM), (tick, floor, FLOOR_MM)),
            ((-FLOOR_MM, floor, tick), (FLOOR_MM, floor, tick)),
        ):
            ends = view_points(np.array([start, end]), azimuth, elevation)
            colour = (90, 90, 90) if tick == 0 else (58, 58, 58)
            cv2.line(panel, pixel_point(ends[0]), pixel_point(ends[1]), colour, 1, cv2.LINE_AA)
    draw_pose(panel, view_points(joints_mm, azimuth, elevation), spec, 2)
    put_label(panel, title, (8, 20), (235, 235, 235), 0.45)
    put_label(panel, f"floor grid {GRID_MM:g} mm", (8, VIEW_SIDE - 10), (170, 170, 170), 0.4)
    return panel


def picture_3d(poses: Sequence[PersonPose], spec: VariantSpec) -> np.ndarray:
    """Per person a row: the root-relative 3D pose from VIEWS, titled with where it stands."""
    rows = []
    for number, pose in enumerate(poses, start=1):
        relative = pose.joints_3d - pose.joints_3d[spec.root_index]
        panels = [_view(relative, spec, title, a, e) for title, a, e in VIEWS]
        if pose.camera_space:
            x, y, z = pose.joints_3d[spec.root_index]
            where = f"root at ({x:.0f}, {y:.0f}, {z:.0f}) mm in the camera frame"
        else:
            where = "root-relative mm (no root depth given)"
        strip = np.full((30, VIEW_SIDE * len(panels), 3), 16, np.uint8)
        put_label(strip, f"#{number}: {where}", (10, 21), (235, 235, 235), 0.5)
        body = np.hstack(panels)
        cv2.line(body, (VIEW_SIDE, 0), (VIEW_SIDE, VIEW_SIDE), (0, 0, 0), 2)
        rows.append(np.vstack([strip, body]))
    width = VIEW_SIDE * len(VIEWS)
    heading = f"ConvNeXtPose-{spec.name} 3D poses; right limbs red, left blue"
    return np.vstack([_legend(width, spec, heading), *rows])
