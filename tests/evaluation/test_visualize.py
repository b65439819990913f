"""eval --vis pictures: files and sizes as designed, both backends visible, the worst frames in
the order of errors computed here by hand from the back-projected predictions.

The backends are stand-ins returning seeded heatmap coordinates (no model, no export): the
pictures only need predictions, and their errors are known independently of the drawing code.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from converter.core.variants import get_variant
from converter.evaluation.evaluate import evaluate
from converter.evaluation.visualize import (
    BACKEND_COLOURS,
    GT_COLOUR,
    HEADER_H,
    PANEL,
    SHEET_CAPTION_H,
    SHEET_NAME,
    SHEET_TILE,
    TITLE_H,
    worst_frames,
    write_visualisations,
)
from converter.h36m.dataset import load_dataset

SPEC = get_variant("XS")
FRAMES = 10


class SeededBackend:
    """Coords (N, J, 3) in heatmap units: a shared seeded pose plus this backend's noise."""

    device, providers = "cpu", ("stand-in",)

    def __init__(self, name: str, coords: np.ndarray) -> None:
        self.name, self._coords, self._next = name, coords, 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = self._coords[self._next : self._next + len(images)]
        self._next += len(images)
        return batch


@pytest.fixture(scope="module")
def evaluated(synthetic_set):
    dataset = load_dataset(synthetic_set("reference"), 2, limit=FRAMES)
    rng = np.random.default_rng(7)
    h, w = SPEC.heatmap_hw
    base = rng.uniform([8, 4, 12], [w - 8, h - 4, SPEC.depth_dim - 12], (FRAMES, 18, 3))
    # Per-frame noise of growing size, shuffled: the worst frames are not the first ones.
    scale = rng.permutation(np.linspace(0.2, 3.0, FRAMES))[:, None, None]
    torch_coords = base + scale * rng.normal(size=base.shape)
    onnx_coords = torch_coords + 0.5 * rng.normal(size=base.shape)
    backends = [SeededBackend("torch", torch_coords), SeededBackend("onnx", onnx_coords)]
    report = evaluate(dataset, backends, SPEC, flip=False, batch_size=4, workers=0)
    return report, dataset


def _hand_errors(report, dataset) -> dict[str, np.ndarray]:
    """Mean distance over the 17 evaluated joints (Thorax, index 17, left out), root-relative,
    from the absolute camera-mm predictions and the annotation's joints."""
    gt = np.stack([s.joints_cam for s in dataset.samples])[:, :17]
    errors = {}
    for result in report.backends:
        pred = result.pred_cam[:, :17]
        diff = (pred - pred[:, :1]) - (gt - gt[:, :1])
        errors[result.name] = np.sqrt((diff**2).sum(axis=-1)).mean(axis=1)
    return errors


def _has(region: np.ndarray, colour) -> int:
    return int(np.all(region == np.array(colour, np.uint8), axis=-1).sum())


def test_worst_frames_follow_the_errors_computed_by_hand(evaluated) -> None:
    report, dataset = evaluated
    errors = _hand_errors(report, dataset)
    worst = np.maximum(errors["torch"], errors["onnx"])
    expected = list(np.argsort(-worst, kind="stable")[:4])
    frames = worst_frames(report, dataset, SPEC, 4)
    assert [f.index for f in frames] == expected
    assert expected != [0, 1, 2, 3]  # the shuffle made the order mean something
    for frame in frames:
        for name in ("torch", "onnx"):
            assert frame.errors_mm[name] == pytest.approx(errors[name][frame.index], rel=1e-9)
        assert frame.image_id == dataset.samples[frame.index].image_id


def test_pictures_and_sheet_are_written_as_designed(evaluated, tmp_path: Path) -> None:
    report, dataset = evaluated
    paths = write_visualisations(report, dataset, SPEC, tmp_path, count=3, worst=5)
    assert [p.suffix for p in paths] == [".png"] * 4 and paths[-1].name == SHEET_NAME
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)

    picture = cv2.imread(str(paths[0]))
    # a header, then one row per backend: title strip + crop, side view, top view
    assert picture.shape == (HEADER_H + 2 * (TITLE_H + PANEL), 3 * PANEL, 3)
    torch_row = picture[HEADER_H + TITLE_H : HEADER_H + TITLE_H + PANEL]
    onnx_top = HEADER_H + 2 * TITLE_H + PANEL
    onnx_row = picture[onnx_top : onnx_top + PANEL]
    for row, mine, other in ((torch_row, "torch", "onnx"), (onnx_row, "onnx", "torch")):
        for panel in range(3):  # 2D crop, side view, top view each show GT and this backend
            region = row[:, panel * PANEL : (panel + 1) * PANEL]
            assert _has(region, BACKEND_COLOURS[mine]) > 50, (mine, panel)
            assert _has(region, GT_COLOUR) > 50, (mine, panel)
            assert _has(region, BACKEND_COLOURS[other]) == 0, (mine, panel)

    sheet = cv2.imread(str(paths[-1]))
    tile_h, tile_w = SHEET_TILE + SHEET_CAPTION_H, 2 * SHEET_TILE
    assert sheet.shape == (HEADER_H + 2 * tile_h, 3 * tile_w, 3)  # 5 tiles: 3 + 2
    first_tile = sheet[HEADER_H : HEADER_H + SHEET_TILE, :tile_w]
    for name in ("torch", "onnx"):  # solid and dashed, both visible in the same tile
        assert _has(first_tile, BACKEND_COLOURS[name]) > 50, name
    empty = sheet[HEADER_H + tile_h :, 2 * tile_w :]  # the sixth place holds no tile
    assert _has(empty, BACKEND_COLOURS["torch"]) == 0 and _has(empty, GT_COLOUR) == 0


def test_one_backend_draws_one_row(evaluated, tmp_path: Path) -> None:
    report, dataset = evaluated
    from dataclasses import replace

    alone = replace(report, backends=report.backends[:1], comparison=None)
    paths = write_visualisations(alone, dataset, SPEC, tmp_path, count=1, worst=2)
    picture = cv2.imread(str(paths[0]))
    assert picture.shape == (HEADER_H + TITLE_H + PANEL, 3 * PANEL, 3)
    assert _has(picture[HEADER_H:], BACKEND_COLOURS["onnx"]) == 0
    sheet = cv2.imread(str(paths[1]))
    assert sheet.shape[0] == HEADER_H + SHEET_TILE + SHEET_CAPTION_H  # two tiles, one row
