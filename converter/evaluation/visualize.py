"""Pictures of predictions, made to compare: ground truth against each backend, in 2D and 3D.

Per drawn frame, one PNG: a row per backend, each with the image crop (ground truth and that
backend's 2D skeleton), a side view and a top view of the root-relative 3D skeletons in mm (as
scored: aligned for Protocol 1), and the frame's error in the row's title. Per run, one contact
sheet of the worst frames by their error, each tile with every backend overlaid (the first solid,
the others dashed on top, so identical predictions still show both).

Colours are chosen away from what the pictures hold: the synthetic figures' limbs are red, blue
and grey, real people wear anything, so skeletons are green / magenta / yellow / cyan with a dark
outline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.atomic import OutputSet, make_output_dir, write_output
from ..core.variants import SKELETON, VariantSpec
from ..h36m.dataset import H36MDataset, Sample, camera_to_pixel, spread_subset
from ..h36m.metrics import eval_joint_indices
from ..h36m.preprocess import read_bgr
from .evaluate import EvalReport

GT_COLOUR = (60, 220, 60)  # BGR: green
BACKEND_COLOURS = {"torch": (255, 60, 255), "onnx": (0, 230, 255)}  # magenta, yellow
OTHER_COLOUR = (255, 255, 0)  # cyan: a third backend
OUTLINE = (20, 20, 20)
PANEL = 360  # side of one square panel, pixels
TITLE_H = 30  # a backend row's title strip
HEADER_H = 64  # the picture's header: frame, legend
VIEW_RANGE_MM = 1100.0  # 3D views show +-this much around the root
GRID_MM = 500.0
SHEET_TILE = 240
SHEET_CAPTION_H = 44
SHEET_COLUMNS = 3  # a tile is the crop and the side view, SHEET_TILE square each
SHEET_NAME = "worst_frames.png"
FONT = cv2.FONT_HERSHEY_SIMPLEX


def backend_colour(name: str) -> tuple[int, int, int]:
    return BACKEND_COLOURS.get(name, OTHER_COLOUR)


def heatmap_to_pixels(coords: np.ndarray, bbox, spec: VariantSpec) -> np.ndarray:
    """(J, 3) heatmap coords -> (J, 2) pixels of the source image, through the box."""
    h, w = spec.heatmap_hw
    x, y, bw, bh = bbox
    return np.stack([coords[:, 0] / w * bw + x, coords[:, 1] / h * bh + y], axis=1)


@dataclass(frozen=True)
class FrameErrors:
    """One frame's error per backend: mean joint distance in mm, as the run scored it."""

    index: int  # into dataset.samples / the report's arrays
    image_id: int
    errors_mm: dict[str, float]

    @property
    def worst_mm(self) -> float:
        return max(self.errors_mm.values())


def frame_errors(report: EvalReport, dataset: H36MDataset, spec: VariantSpec) -> list[FrameErrors]:
    """Every frame's error per backend (Thorax excluded, Protocol 1 aligned, as scored)."""
    joints = list(eval_joint_indices(spec.joint_names))
    gt = np.stack([s.joints_cam for s in dataset.samples])
    gt = gt - gt[:, spec.root_index : spec.root_index + 1]
    per_backend = {
        r.name: np.linalg.norm(r.scored[:, joints] - gt[:, joints], axis=-1).mean(axis=1)
        for r in report.backends
    }
    return [
        FrameErrors(i, s.image_id, {name: float(e[i]) for name, e in per_backend.items()})
        for i, s in enumerate(dataset.samples)
    ]


def rank_worst(errors: list[FrameErrors], count: int) -> list[FrameErrors]:
    return sorted(errors, key=lambda f: (-f.worst_mm, f.index))[:count]


def worst_frames(
    report: EvalReport, dataset: H36MDataset, spec: VariantSpec, count: int
) -> list[FrameErrors]:
    """The count frames with the largest error (the worst backend's), largest first; ties in
    test order."""
    return rank_worst(frame_errors(report, dataset, spec), count)


# ---------------------------------------------------------------------------------------------
# Drawing


def pixel_point(p) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _dashed(image: np.ndarray, a, b, colour, thickness: int, dash: int = 7) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    steps = max(1, int(np.linalg.norm(b - a) // dash))
    for k in range(0, steps, 2):
        p = a + (b - a) * k / steps
        q = a + (b - a) * min(k + 1, steps) / steps
        cv2.line(image, pixel_point(p), pixel_point(q), colour, thickness, cv2.LINE_AA)


def draw_skeleton(
    image: np.ndarray, points: np.ndarray, colour, thickness: int, dashed: bool = False
) -> None:
    """Limbs with a dark outline (visible on any background), joints as dots."""
    pts = [pixel_point(p) for p in points]
    for a, b in SKELETON:
        if dashed:
            _dashed(image, pts[a], pts[b], OUTLINE, thickness + 2)
            _dashed(image, pts[a], pts[b], colour, thickness)
        else:
            cv2.line(image, pts[a], pts[b], OUTLINE, thickness + 2, cv2.LINE_AA)
            cv2.line(image, pts[a], pts[b], colour, thickness, cv2.LINE_AA)
    for point in pts[:17]:
        cv2.circle(image, point, thickness + 1, colour, -1, cv2.LINE_AA)


def put_label(
    image: np.ndarray, text: str, origin, colour, scale: float = 0.5, bold: int = 1
) -> int:
    """Text on a dark box (readable over any image); returns the x just after it."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, bold)
    x, y = origin
    cv2.rectangle(image, (x - 3, y - height - 3), (x + width + 3, y + baseline + 1), OUTLINE, -1)
    cv2.putText(image, text, origin, FONT, scale, colour, bold, cv2.LINE_AA)
    return x + width


def _crop_transform(bbox, side: int) -> np.ndarray:
    """2x3 affine: source pixels -> a side x side panel showing the box (square, 1.05x)."""
    x, y, w, h = bbox
    extent = 1.05 * max(w, h)
    scale = side / extent
    cx, cy = x + w / 2, y + h / 2
    return np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]])


def _crop_panel(image: np.ndarray, sample: Sample, side: int) -> tuple[np.ndarray, np.ndarray]:
    matrix = _crop_transform(sample.bbox, side)
    panel = cv2.warpAffine(
        image, matrix, (side, side), flags=cv2.INTER_AREA, borderValue=(40, 40, 40)
    )
    return panel, matrix


def _to_panel(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _view_panel(title: str, horizontal: str, vertical: str, side: int = PANEL) -> np.ndarray:
    """A dark panel with a grid every GRID_MM around the root and its axis names."""
    panel = np.full((side, side, 3), 32, np.uint8)
    scale = side / (2 * VIEW_RANGE_MM)
    ticks = np.arange(-VIEW_RANGE_MM // GRID_MM, VIEW_RANGE_MM // GRID_MM + 1) * GRID_MM
    for mm in ticks:
        pos = round(side / 2 + mm * scale)
        colour = (90, 90, 90) if mm == 0 else (60, 60, 60)
        cv2.line(panel, (pos, 0), (pos, side), colour, 1)
        cv2.line(panel, (0, pos), (side, pos), colour, 1)
    put_label(panel, title, (8, 20), (235, 235, 235), 0.5)
    put_label(panel, f"grid {GRID_MM:g} mm", (8, side - 10), (170, 170, 170), 0.4)
    width = cv2.getTextSize(horizontal, FONT, 0.4, 1)[0][0]
    put_label(panel, horizontal, (side - 10 - width, side - 10), (170, 170, 170), 0.4)
    put_label(panel, vertical, (8, 40), (170, 170, 170), 0.4)
    return panel


def _view_points(
    joints_mm: np.ndarray, axes: tuple[int, int], flip: tuple[bool, bool], side: int = PANEL
) -> np.ndarray:
    """Root-relative mm -> panel pixels; flip[i]: larger values go left/up instead."""
    scale = side / (2 * VIEW_RANGE_MM)
    h = joints_mm[:, axes[0]] * (-1 if flip[0] else 1)
    v = joints_mm[:, axes[1]] * (-1 if flip[1] else 1)
    return np.stack([side / 2 + h * scale, side / 2 + v * scale], axis=1)


# Side view: depth z to the right, up (-y, camera y points down) upwards.
SIDE_VIEW = ("side view (mm)", "depth z ->", "up", (2, 1), (False, False))
# Top view: x to the right, depth z upwards (away from the camera).
TOP_VIEW = ("top view (mm)", "x ->", "depth z: up", (0, 2), (False, True))


def _backend_row(
    image: np.ndarray,
    sample: Sample,
    gt_pixels: np.ndarray,
    gt_relative: np.ndarray,
    name: str,
    pixels: np.ndarray,
    relative: np.ndarray,
    title: str,
) -> np.ndarray:
    colour = backend_colour(name)
    crop, matrix = _crop_panel(image, sample, PANEL)
    draw_skeleton(crop, _to_panel(gt_pixels, matrix), GT_COLOUR, 3)
    draw_skeleton(crop, _to_panel(pixels, matrix), colour, 2)
    put_label(crop, "image (2D)", (8, 20), (235, 235, 235), 0.5)
    panels = [crop]
    for label, horizontal, vertical, axes, flip in (SIDE_VIEW, TOP_VIEW):
        view = _view_panel(label, horizontal, vertical)
        draw_skeleton(view, _view_points(gt_relative, axes, flip), GT_COLOUR, 3)
        draw_skeleton(view, _view_points(relative, axes, flip), colour, 2)
        panels.append(view)
    strip = np.full((TITLE_H, PANEL * len(panels), 3), 16, np.uint8)
    put_label(strip, title, (10, 21), colour, 0.6, 2)
    body = np.hstack(panels)
    cv2.line(body, (PANEL, 0), (PANEL, PANEL), (0, 0, 0), 2)
    cv2.line(body, (2 * PANEL, 0), (2 * PANEL, PANEL), (0, 0, 0), 2)
    return np.vstack([strip, body])


def _legend(width: int, heading: str, names: list[str]) -> np.ndarray:
    header = np.full((HEADER_H, width, 3), 16, np.uint8)
    put_label(header, heading, (10, 24), (235, 235, 235), 0.6, 1)
    x = 10
    for label, colour in [("ground truth", GT_COLOUR)] + [(n, backend_colour(n)) for n in names]:
        cv2.line(header, (x, 46), (x + 28, 46), OUTLINE, 6, cv2.LINE_AA)
        cv2.line(header, (x, 46), (x + 28, 46), colour, 3, cv2.LINE_AA)
        x = put_label(header, label, (x + 36, 51), colour, 0.55, 1) + 28
    return header


def frame_picture(
    report: EvalReport, dataset: H36MDataset, spec: VariantSpec, frame: FrameErrors
) -> np.ndarray:
    """One frame: a header, then per backend a row of image crop, side view and top view."""
    index, errors = frame.index, frame.errors_mm
    sample = dataset.samples[index]
    image = read_bgr(sample.image_path)
    gt_pixels = camera_to_pixel(sample.joints_cam, sample.focal, sample.center)
    gt_relative = sample.joints_cam - sample.joints_cam[spec.root_index]
    aligned = ", aligned" if report.protocol == 1 else ""
    rows = [
        _backend_row(
            image,
            sample,
            gt_pixels,
            gt_relative,
            result.name,
            heatmap_to_pixels(result.coords[index], sample.bbox, spec),
            result.scored[index],
            f"{result.name}: {report.metric} {errors[result.name]:.1f} mm this frame "
            f"(root-relative{aligned})",
        )
        for result in report.backends
    ]
    width = rows[0].shape[1]
    heading = (
        f"image {sample.image_id}, {sample.action}, subject {sample.subject}, camera "
        f"{sample.camera_index}: ConvNeXtPose-{report.variant}, Protocol {report.protocol}"
    )
    return np.vstack([_legend(width, heading, [r.name for r in report.backends]), *rows])


def contact_sheet(
    report: EvalReport, dataset: H36MDataset, spec: VariantSpec, frames: list[FrameErrors]
) -> np.ndarray:
    """Tiles of the given frames (crop and side view; ground truth and every backend),
    captioned with rank, image and each backend's error; the first backend solid, the others
    dashed over it."""
    columns = min(SHEET_COLUMNS, max(1, len(frames)))
    rows = max(1, -(-len(frames) // columns))
    tile_h, tile_w = SHEET_TILE + SHEET_CAPTION_H, 2 * SHEET_TILE
    names = [r.name for r in report.backends]
    heading = (
        f"worst {len(frames)} of {len(dataset.samples)} frames by {report.metric} "
        f"(the worst backend's), ConvNeXtPose-{report.variant}, Protocol {report.protocol}"
    )
    width = max(columns * tile_w, 760)
    sheet = np.full((HEADER_H + rows * tile_h, width, 3), 16, np.uint8)
    sheet[:HEADER_H] = _legend(width, heading, names)
    for rank, frame in enumerate(frames):
        sample = dataset.samples[frame.index]
        crop, matrix = _crop_panel(read_bgr(sample.image_path), sample, SHEET_TILE)
        gt = camera_to_pixel(sample.joints_cam, sample.focal, sample.center)
        draw_skeleton(crop, _to_panel(gt, matrix), GT_COLOUR, 2)
        for k, result in enumerate(report.backends):
            pixels = heatmap_to_pixels(result.coords[frame.index], sample.bbox, spec)
            draw_skeleton(
                crop, _to_panel(pixels, matrix), backend_colour(result.name), 2, dashed=k > 0
            )
        label, horizontal, vertical, axes, flip = SIDE_VIEW
        view = _view_panel(label, horizontal, vertical, SHEET_TILE)
        gt_relative = sample.joints_cam - sample.joints_cam[spec.root_index]
        draw_skeleton(view, _view_points(gt_relative, axes, flip, SHEET_TILE), GT_COLOUR, 2)
        for k, result in enumerate(report.backends):
            points = _view_points(result.scored[frame.index], axes, flip, SHEET_TILE)
            draw_skeleton(view, points, backend_colour(result.name), 2, dashed=k > 0)
        caption = np.full((SHEET_CAPTION_H, tile_w, 3), 16, np.uint8)
        put_label(
            caption,
            f"#{rank + 1} image {sample.image_id} {sample.action}",
            (6, 17),
            (235, 235, 235),
            0.45,
        )
        x = 6
        for name in names:
            text = f"{name} {frame.errors_mm[name]:.1f} mm"
            x = put_label(caption, text, (x, 37), backend_colour(name), 0.45) + 12
        top = HEADER_H + (rank // columns) * tile_h
        left = (rank % columns) * tile_w
        sheet[top : top + tile_h, left : left + tile_w] = np.vstack(
            [np.hstack([crop, view]), caption]
        )
        cv2.rectangle(sheet, (left, top), (left + tile_w - 1, top + tile_h - 1), (0, 0, 0), 2)
    return sheet


def png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok  # encoding a uint8 BGR array to PNG cannot fail
    return data.tobytes()


def write_visualisations(
    report: EvalReport,
    dataset: H36MDataset,
    spec: VariantSpec,
    directory: str | Path,
    count: int = 6,
    overwrite: bool = False,
    worst: int = 12,
    outputs: OutputSet | None = None,
) -> list[Path]:
    """count frame pictures spread over the set, then the contact sheet of the worst frames.

    Each picture is published whole (with outputs, as part of that set); without overwrite an
    existing file is kept and refused."""
    directory = make_output_dir(Path(directory))

    def write(path: Path, picture: np.ndarray) -> Path:
        content = png_bytes(picture)
        return outputs.write(path, content) if outputs else write_output(path, content, overwrite)

    errors = frame_errors(report, dataset, spec)
    written = []
    for index in spread_subset(len(dataset.samples), count):
        sample = dataset.samples[index]
        path = directory / f"{sample.image_id}_{sample.action}.png"
        picture = frame_picture(report, dataset, spec, errors[index])
        written.append(write(path, picture))
    ranked = rank_worst(errors, worst)
    written.append(write(directory / SHEET_NAME, contact_sheet(report, dataset, spec, ranked)))
    return written
