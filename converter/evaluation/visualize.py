"""Pictures of predictions: ground-truth and predicted 2D skeletons drawn on the source image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from converter.core.atomic import make_output_dir, write_output
from converter.core.variants import SKELETON, VariantSpec
from converter.evaluation.evaluate import EvalReport
from converter.h36m.dataset import H36MDataset, camera_to_pixel, spread_subset
from converter.h36m.metrics import eval_joint_indices
from converter.h36m.preprocess import read_bgr

GT_COLOUR = (60, 200, 60)  # BGR
BACKEND_COLOURS = {"torch": (40, 40, 230), "onnx": (230, 140, 30)}
OTHER_COLOUR = (200, 60, 200)


def heatmap_to_pixels(coords: np.ndarray, bbox, spec: VariantSpec) -> np.ndarray:
    """(J, 3) heatmap coords -> (J, 2) pixels of the source image, through the box."""
    h, w = spec.heatmap_hw
    x, y, bw, bh = bbox
    return np.stack([coords[:, 0] / w * bw + x, coords[:, 1] / h * bh + y], axis=1)


def _draw_skeleton(image: np.ndarray, points: np.ndarray, colour, thickness: int) -> None:
    pts = [(round(float(p[0])), round(float(p[1]))) for p in points]
    for a, b in SKELETON:
        cv2.line(image, pts[a], pts[b], colour, thickness, cv2.LINE_AA)
    for point in pts[:17]:
        cv2.circle(image, point, thickness + 1, colour, -1, cv2.LINE_AA)


def write_visualisations(
    report: EvalReport,
    dataset: H36MDataset,
    spec: VariantSpec,
    directory: str | Path,
    count: int = 6,
    overwrite: bool = False,
) -> list[Path]:
    """Draw GT (green) and each backend's prediction on count frames spread over the set.

    Each picture is published whole; without overwrite an existing file is kept and refused."""
    directory = make_output_dir(Path(directory))
    joints = list(eval_joint_indices(spec.joint_names))
    written = []
    for index in spread_subset(len(dataset.samples), count):
        sample = dataset.samples[index]
        image = read_bgr(sample.image_path)
        x, y, bw, bh = sample.bbox
        thickness = max(2, round(bh / 150))
        cv2.rectangle(
            image, (round(x), round(y)), (round(x + bw), round(y + bh)), (255, 255, 255), 1
        )
        gt = camera_to_pixel(sample.joints_cam, sample.focal, sample.center)
        _draw_skeleton(image, gt, GT_COLOUR, thickness)
        legend = [(f"ground truth ({sample.action}, image {sample.image_id})", GT_COLOUR)]
        gt_relative = sample.joints_cam - sample.joints_cam[spec.root_index]
        for result in report.backends:
            colour = BACKEND_COLOURS.get(result.name, OTHER_COLOUR)
            _draw_skeleton(
                image,
                heatmap_to_pixels(result.coords[index], sample.bbox, spec),
                colour,
                max(1, thickness - 1),
            )
            error = np.linalg.norm(result.scored[index, joints] - gt_relative[joints], axis=1)
            legend.append((f"{result.name}: {error.mean():.1f} mm this frame", colour))
        cv2.rectangle(image, (0, 0), (560, 14 + 28 * len(legend)), (0, 0, 0), -1)
        for row, (text, colour) in enumerate(legend):
            cv2.putText(
                image,
                text,
                (12, 30 + 28 * row),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.8,
                colour,
                2,
                cv2.LINE_AA,
            )
        path = directory / f"{sample.image_id}_{sample.action}.jpg"
        _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        written.append(write_output(path, jpeg.tobytes(), overwrite))
    return written
