"""A predict run: its options checked before anything is read, images and boxes gathered with
bounds, outputs published whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from converter.checkpoints.released import load_released
from converter.core.errors import DatasetError, OptionError, OutputExistsError, ReplaceRefusedError
from converter.h36m.photos import PHOTO_DIR, photo_paths
from converter.prediction import run as run_module
from converter.prediction.run import (
    PredictOptions,
    gather_images,
    read_boxes_file,
    run_prediction,
)


@pytest.fixture(scope="module")
def graph(onnx_cache) -> Path:
    return onnx_cache.exported(load_released())[0]


def _options(graph: Path, *images: Path, **fields) -> PredictOptions:
    return PredictOptions(model=graph, images=images, device="cpu", **fields)


@pytest.mark.parametrize(
    ("fields", "option", "problem"),
    [
        ({"images": ()}, "images", "none given"),
        ({"box": ((1, 2, 3, 4),), "boxes": Path("b.json")}, "box", "both give boxes"),
        ({"images": (Path("a.jpg"), Path("b.jpg")), "box": ((1, 2, 3, 4),)}, "box", "one image"),
        ({"box": ((1, 2, 3, 4),), "root_depth": (1.0, 2.0)}, "root_depth", "2 given for 1"),
        ({"images": (Path("a.jpg"), Path("b.jpg")), "root_depth": (5.0,)}, "root_depth", "one"),
        ({"root_depth": (0.0,)}, "root_depth", "positive distance"),
        ({"root_depth": (float("inf"),)}, "root_depth", "positive distance"),
        ({"boxes": Path("b.json"), "root_depth": (5.0,)}, "root_depth", "boxes file"),
        ({"focal": (1500.0, 0.0)}, "focal", "two positive numbers"),
        ({"focal": (1500.0,)}, "focal", "two positive numbers"),
        ({"princpt": (float("nan"), 1.0)}, "princpt", "two finite numbers"),
        ({"threads": 0}, "threads", "at least 1"),
        ({"device": "tpu"}, "device", "must be one of"),
        ({"runtime": "tensorflow"}, "runtime", "must be one of"),
    ],
)
def test_options_are_checked_when_made(fields: dict, option: str, problem: str) -> None:
    values = {"model": Path("m.onnx"), "images": (Path("a.jpg"),), **fields}
    with pytest.raises(OptionError, match=problem) as refused:
        PredictOptions(**values)
    assert refused.value.option == option


def test_the_camera_defaults_to_the_official_demo(tmp_path: Path) -> None:
    options = PredictOptions(model=Path("m.onnx"), images=(Path("a.jpg"),))
    assert options.camera.focal == (1500.0, 1500.0) and options.camera.principal is None
    assert options.camera.principal_for(640, 480) == (320.0, 240.0)
    given = PredictOptions(
        model=Path("m.onnx"), images=(Path("a.jpg"),), focal=(1.0, 2.0), princpt=(-3.0, 4.0)
    )
    assert given.camera.focal == (1.0, 2.0) and given.camera.principal == (-3.0, 4.0)


def test_a_folder_gives_its_images_in_name_order(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"x")
    assert [p.name for p in gather_images((tmp_path,))] == ["a.JPG", "b.png"]


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    os.symlink(outside / "secret.png", inside / "a.png")
    with pytest.raises(DatasetError, match=r"a\.png: a link to outside"):
        gather_images((inside,))


def test_image_count_bound_just_inside_and_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(3):
        (tmp_path / f"{k}.png").write_bytes(b"x")
    monkeypatch.setattr(run_module, "MAX_IMAGES", 3)
    assert len(gather_images((tmp_path,))) == 3
    monkeypatch.setattr(run_module, "MAX_IMAGES", 2)
    with pytest.raises(DatasetError, match="more than 2 images"):
        gather_images((tmp_path,))


def test_missing_and_empty_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.jpg: no such file or folder"):
        gather_images((tmp_path / "nope.jpg",))
    with pytest.raises(DatasetError, match=r"holds no \.png"):
        gather_images((tmp_path,))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected an object"),
        ("{", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply|not JSON"),
        ('{"a.jpg": []}', "non-empty list"),
        ('{"a.jpg": [[1, 2, 3]]}', "four numbers"),
        ('{"a.jpg": [[1, 2, 3, true]]}', "four numbers"),
        ('{"a.jpg": [[1, 2, 3, "4"]]}', "four numbers"),
        ('{"a.jpg": [{"box": [1, 2, 3, 4], "depth": 5}]}', "an entry is"),
        ('{"a.jpg": [{"box": [1, 2, 3, 4], "root_depth_mm": -5}]}', "positive distance"),
        ('{"a.jpg": [{"box": [1, 2, 3, 4], "root_depth_mm": "5"}]}', "number of mm"),
    ],
)
def test_bad_boxes_files_are_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_boxes_file(path)


def test_boxes_file_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"a.jpg": [[0, 0, 5, 5]] * 3}))
    monkeypatch.setattr(run_module, "MAX_PEOPLE_PER_IMAGE", 3)
    assert len(read_boxes_file(path)["a.jpg"]) == 3
    monkeypatch.setattr(run_module, "MAX_PEOPLE_PER_IMAGE", 2)
    with pytest.raises(DatasetError, match="more than 2 boxes"):
        read_boxes_file(path)
    monkeypatch.setattr(run_module, "MAX_BOXES_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(DatasetError, match="bytes, over the"):
        read_boxes_file(path)


def test_a_run_writes_pictures_and_predictions(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_prediction(_options(graph, PHOTO_DIR, output=out))
    assert report.people == 4 and report.variant == "XS" and report.weights == "trained"
    names = {p.name for p in out.iterdir()}
    assert names == {"predictions.json"} | {
        f"{p.stem}_{kind}.png" for p in photo_paths() for kind in ("2d", "3d")
    }
    saved = json.loads((out / "predictions.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    person = saved["images"][0]["people"][0]
    assert len(person["joints_2d_px"]) == 18 and person["space"] == "root-relative"
    picture = cv2.imread(str(out / "00000_2d.png"))
    assert picture is not None and picture.shape[1] == 512


def test_the_boxes_file_gives_people_and_depths(graph: Path, tmp_path: Path) -> None:
    image = tmp_path / "two.png"
    cv2.imwrite(str(image), np.hstack([cv2.imread(str(p)) for p in photo_paths()[:2]]))
    shutil.copy(photo_paths()[2], tmp_path / "single.png")
    boxes = tmp_path / "boxes.json"
    people = [{"box": [20, 10, 216, 236], "root_depth_mm": 5000}, [276, 10, 216, 236]]
    boxes.write_text(json.dumps({"two.png": people}))
    report = run_prediction(_options(graph, image, tmp_path / "single.png", boxes=boxes))
    first, second = report.images[0].people
    assert first.camera_space and first.root_depth_mm == 5000.0 and not second.camera_space
    assert first.joints_2d[:, 0].max() < 256 < second.joints_2d[:, 0].min()
    assert report.images[0].box_source == "boxes file"
    assert report.images[1].box_source == "whole image" and len(report.images[1].people) == 1
    assert any("single.png: not in" in n for n in report.notes)


def test_boxes_for_an_image_not_in_the_run_are_refused(graph: Path, tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"typo.png": [[0, 0, 10, 10]]}))
    with pytest.raises(DatasetError, match=r"boxes for 'typo\.png', which is not an image"):
        run_prediction(_options(graph, photo_paths()[0], boxes=boxes))


def test_outputs_are_checked_before_the_graph_runs(graph: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(PHOTO_DIR, photos)
    with pytest.raises(OutputExistsError, match="inside the input"):
        run_prediction(_options(graph, photos, output=photos / "out"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "00001_3d.png").write_bytes(b"mine")
    with pytest.raises(ReplaceRefusedError, match=r"00001_3d\.png: already exists"):
        run_prediction(_options(graph, photos, output=out))
    assert [p.name for p in out.iterdir()] == ["00001_3d.png"]  # nothing else was written
    run_prediction(_options(graph, photos, output=out, force=True))
    assert (out / "00001_3d.png").read_bytes() != b"mine"


def test_a_bad_image_stops_the_run_before_anything_is_written(graph: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(photo_paths()[0], images / "a.png")
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"b\.png: a PNG file whose header gives no image size"):
        run_prediction(_options(graph, images, output=out))
    assert not out.exists()


def test_same_named_images_get_their_own_pictures(graph: Path, tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        shutil.copy(photo_paths()[0], tmp_path / folder / "p.png")
    out = tmp_path / "out"
    run_prediction(_options(graph, tmp_path / "x", tmp_path / "y", output=out))
    assert {"p_2d.png", "p-2_2d.png", "p_3d.png", "p-2_3d.png"} <= {q.name for q in out.iterdir()}
