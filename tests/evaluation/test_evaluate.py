"""Evaluation loop: flip test, layout independence, PyTorch vs onnxruntime, written outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from converter.checkpoints.canonical import build_loaded_model
from converter.core.errors import OutputExistsError
from converter.core.variants import get_variant
from converter.evaluation.evaluate import (
    RESULT_FILE,
    OnnxBackend,
    TorchBackend,
    evaluate,
    onnx_backend,
    predict,
    run_backends,
    unflip_coords,
    write_predictions,
)
from converter.evaluation.visualize import write_visualisations
from converter.h36m.dataset import load_dataset
from converter.h36m.preprocess import load_input
from converter.h36m.synthetic import BBOX_ROOT_FILE
from converter.runtimes.sessions import open_onnx_session

SPEC = get_variant("XS")


@pytest.fixture(scope="module")
def layouts(synthetic_set) -> dict[str, Path]:
    return {layout: synthetic_set(layout) for layout in ("reference", "kaggle")}


@pytest.fixture(scope="module")
def xs_torch(onnx_cache) -> TorchBackend:
    ckpt = onnx_cache.release_checkpoint("XS")
    return TorchBackend(build_loaded_model(ckpt), torch.device("cpu"))


@pytest.fixture(scope="module")
def xs_onnx(onnx_cache) -> OnnxBackend:
    path, _ = onnx_cache.exported(onnx_cache.release_checkpoint("XS"))
    return onnx_backend(path, device="cpu")


def _patches(root: Path, count: int) -> np.ndarray:
    dataset = load_dataset(root, 2, limit=count)
    return np.stack([load_input(s.image_path, s.bbox, SPEC) for s in dataset.samples])


def test_unflip_mirrors_x_and_swaps_pairs() -> None:
    coords = np.zeros((1, 18, 3))
    coords[0, :, 0] = np.arange(18)
    coords[0, :, 1] = 100 + np.arange(18)
    out = unflip_coords(coords, SPEC)
    width = SPEC.heatmap_hw[1]
    assert out[0, 0, 0] == width - 0 - 1  # Pelvis stays Pelvis, x' = W - x - 1
    assert out[0, 1, 0] == width - 4 - 1 and out[0, 1, 1] == 104  # R_Hip <- mirrored L_Hip
    assert out[0, 14, 1] == 111 and out[0, 11, 1] == 114  # shoulders swapped
    np.testing.assert_array_equal(unflip_coords(out, SPEC), coords)  # an involution


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_flip_test_is_mirror_symmetric(layouts, xs_torch, xs_onnx, backend: str) -> None:
    """(d) flip-tested predictions of an image and of its mirror are mirror images."""
    runner = xs_torch if backend == "torch" else xs_onnx
    images = _patches(layouts["reference"], 4)
    mirrored = np.ascontiguousarray(images[..., ::-1])
    plain = predict(runner, images, SPEC, flip=True)
    of_mirror = predict(runner, mirrored, SPEC, flip=True)
    np.testing.assert_allclose(of_mirror, unflip_coords(plain, SPEC), atol=1e-4, rtol=0)
    # not vacuous: without the flip test the two are not mirror images
    no_flip = predict(runner, images, SPEC, flip=False)
    no_flip_mirror = predict(runner, mirrored, SPEC, flip=False)
    assert np.abs(no_flip_mirror - unflip_coords(no_flip, SPEC)).max() > 1e-2
    assert np.abs(plain - no_flip).max() > 1e-3


def test_reference_and_kaggle_layouts_give_identical_predictions(layouts, xs_torch) -> None:
    """(e) the same frames read through both layouts give the same predictions."""
    results = {}
    for layout, root in layouts.items():
        dataset = load_dataset(root, 2, limit=8)
        assert dataset.layout.name == layout
        results[layout] = evaluate(dataset, [xs_torch], SPEC, batch_size=6, progress=False)
    reference, kaggle = results["reference"], results["kaggle"]
    assert reference.image_ids == kaggle.image_ids
    np.testing.assert_array_equal(reference.backends[0].coords, kaggle.backends[0].coords)
    assert reference.backends[0].summary == kaggle.backends[0].summary


def test_torch_and_onnxruntime_agree_on_the_synthetic_set(layouts, xs_torch, xs_onnx) -> None:
    """(f) MPJPE of PyTorch and onnxruntime agree within 0.05 mm on 40 frames of the synthetic
    set (batches of 16 and a last one of 8: a backend that mishandles a short batch shows)."""
    dataset = load_dataset(layouts["reference"], 2, limit=40)
    report = evaluate(dataset, [xs_torch, xs_onnx], SPEC, batch_size=16, progress=False)
    comparison = report.comparison
    assert comparison is not None and comparison.backends == ("torch", "onnx")
    assert report.frames == 40
    assert abs(comparison.difference_mm) < 0.05
    assert comparison.max_distance_mm < 0.5
    for result in report.backends:
        assert result.summary.frames == 40 and np.isfinite(result.summary.total_mm)
        assert result.inference_s > 0 and result.decode_s > 0 and result.fps > 0
    assert report.to_dict()["comparison"]["backends"] == ["torch", "onnx"]


def test_protocol_1_with_rootnet_boxes(layouts, xs_torch, xs_onnx) -> None:
    root = layouts["kaggle"]
    dataset = load_dataset(root, 1, bbox_root=root / BBOX_ROOT_FILE, limit=6)
    report = evaluate(dataset, [xs_torch, xs_onnx], SPEC, batch_size=4, workers=0, progress=False)
    assert report.metric == "PA-MPJPE"
    assert abs(report.comparison.difference_mm) < 0.05  # type: ignore[union-attr]


def test_batching_and_workers_do_not_change_results(layouts, xs_torch) -> None:
    dataset = load_dataset(layouts["reference"], 2, limit=5)
    a, _, _ = run_backends(dataset.samples, [xs_torch], SPEC, flip=False, batch_size=5,
                           workers=0, progress=False)  # fmt: skip
    b, _, _ = run_backends(dataset.samples, [xs_torch], SPEC, flip=False, batch_size=2,
                           workers=3, progress=False)  # fmt: skip
    np.testing.assert_allclose(a["torch"], b["torch"], atol=1e-4)


def test_fixed_batch_onnx_model_is_fed_in_chunks(onnx_cache, layouts) -> None:
    ckpt = onnx_cache.release_checkpoint("XS")
    path, _ = onnx_cache.exported(ckpt, batch=2, simplify=False)
    fixed = OnnxBackend(open_onnx_session(path, device="cpu"))
    images = _patches(layouts["reference"], 5)
    expected = TorchBackend(build_loaded_model(ckpt), torch.device("cpu"))(images)
    np.testing.assert_allclose(fixed(images), expected, atol=2e-3)


def test_predictions_and_pictures_are_written(layouts, xs_torch, xs_onnx, tmp_path) -> None:
    dataset = load_dataset(layouts["reference"], 2, limit=5)
    report = evaluate(dataset, [xs_torch, xs_onnx], SPEC, batch_size=5, progress=False)
    files = write_predictions(report, dataset, SPEC, tmp_path / "pred")
    assert [f.name for f in files] == [RESULT_FILE.format(backend=b) for b in ("torch", "onnx")]
    rows = json.loads(files[0].read_text())
    assert len(rows) == 5
    assert set(rows[0]) == {"image_id", "joint_cam", "bbox", "root_cam"}
    assert np.array(rows[0]["joint_cam"]).shape == (17, 3)  # Thorax dropped
    assert rows[0]["joint_cam"][0] == [0.0, 0.0, 0.0]  # root-relative
    assert [r["image_id"] for r in rows] == list(report.image_ids)
    pictures = write_visualisations(report, dataset, SPEC, tmp_path / "vis", count=3)
    assert len(pictures) == 3 + 1  # the frames, then the worst-frame sheet
    image = cv2.imread(str(pictures[0]))
    assert image is not None and image.shape[2] == 3  # sizes: tests/evaluation/test_visualize.py


def test_outputs_are_published_whole_with_umask_modes_and_not_clobbered(
    layouts, xs_torch, tmp_path
) -> None:
    dataset = load_dataset(layouts["reference"], 2, limit=2)
    report = evaluate(dataset, [xs_torch], SPEC, batch_size=2, flip=False, progress=False)
    old = os.umask(0o027)
    try:
        (predictions,) = write_predictions(report, dataset, SPEC, tmp_path / "pred")
        pictures = write_visualisations(report, dataset, SPEC, tmp_path / "vis", count=2)
    finally:
        os.umask(old)
    assert predictions.stat().st_mode & 0o777 == 0o640  # not the temporary file's 0600
    assert {p.stat().st_mode & 0o777 for p in pictures} == {0o640}
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == sorted(p.name for p in pictures)
    predictions.write_text("earlier results")
    with pytest.raises(OutputExistsError, match="kept it"):
        write_predictions(report, dataset, SPEC, tmp_path / "pred")
    assert predictions.read_text() == "earlier results"
    with pytest.raises(OutputExistsError):
        write_visualisations(report, dataset, SPEC, tmp_path / "vis", count=2)
    write_predictions(report, dataset, SPEC, tmp_path / "pred", overwrite=True)
    assert len(json.loads(predictions.read_text())) == 2
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [predictions.name]
