"""converter.h36m.dataset on a Human3.6M tree written by hand: a few frames, exact messages.

The tree is a handful of JSON records in the reference annotation format (facts §4.1) and 8x8
JPEGs, so every test runs in milliseconds (this file is part of `just mutate`). Expected values
are worked out by hand in the comments: the camera rotates 90 degrees about Z, so R·X + t is
easy to follow, and the boxes are small round numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from converter.core.errors import DatasetError
from converter.h36m import dataset as ds
from converter.h36m.dataset import (
    action_index_from_file_name,
    camera_problem,
    camera_to_pixel,
    detect_layout,
    load_bbox_root,
    load_dataset,
    spread_subset,
)

# 90 degrees about Z: (x, y, z) -> (-y, x, z); then t moves it 5 m away from the camera.
ROTATION = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
TRANSLATION = [10.0, 20.0, 5000.0]
CAMERA = {"R": ROTATION, "t": TRANSLATION, "f": [1000.0, 1100.0], "c": [500.0, 510.0]}


def _joints(offset: float) -> list[list[float]]:
    """17 world joints: joint j at (offset + j, 2j, 3j) mm."""
    return [[offset + j, 2.0 * j, 3.0 * j] for j in range(17)]


def _sequence(subject: int, action: int, subaction: int = 1, camera: int = 1) -> str:
    return f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{camera:02d}"


def _subject_files(subject: int, frames: list[tuple[int, int, list[float]]]) -> dict[str, object]:
    """(image id, frame index, box) per frame; all of action 2, subaction 1, camera 1."""
    images, annotations, frame_joints = [], [], {}
    for image_id, frame, box in frames:
        sequence = _sequence(subject, 2)
        images.append(
            {
                "id": image_id,
                "file_name": f"{sequence}/{sequence}_{frame + 1:06d}.jpg",
                "width": 1000,
                "height": 1000,
                "subject": subject,
                "action_idx": 2,
                "subaction_idx": 1,
                "cam_idx": 1,
                "frame_idx": frame,
            }
        )
        annotations.append({"image_id": image_id, "bbox": box})
        frame_joints[str(frame)] = _joints(float(frame))
    return {
        "data": {"images": images, "annotations": annotations},
        "camera": {"1": CAMERA},
        "joint_3d": {"2": {"1": frame_joints}},
    }


# S9: frames 0, 64 (test frames) and 65 (not one); S11: frame 0.
FRAMES = {
    9: [(900, 0, [100, 200, 50, 100]), (901, 64, [0, 0, 20, 10]), (902, 65, [1, 1, 5, 5])],
    11: [(1100, 0, [10, 20, 30, 30])],
}


def _tree(root: Path, frames=None, images: bool = True, annotations: str = "annotations") -> Path:
    for subject, subject_frames in (frames or FRAMES).items():
        files = _subject_files(subject, subject_frames)
        folder = root / annotations
        folder.mkdir(parents=True, exist_ok=True)
        for kind, content in files.items():
            (folder / f"Human36M_subject{subject}_{kind}.json").write_text(json.dumps(content))
        if images:
            for image in files["data"]["images"]:  # type: ignore[index]
                path = root / "images" / image["file_name"]
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), np.full((8, 8, 3), 90, np.uint8))
    return root


def _refused(call, *args, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        call(*args, **kwargs)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    return message


# --- reading the frames --------------------------------------------------------------------------


def test_protocol_2_frames_by_hand(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    data = load_dataset(root, 2)
    assert data.protocol == 2 and data.metric == "MPJPE" and data.subjects == (9, 11)
    assert data.bbox_source == "ground truth" and data.dropped == 0 and data.skipped == ()
    assert len(data) == 3
    assert [s.image_id for s in data.samples] == [900, 901, 1100]  # S9 then S11; 65 % 64 != 0
    first = data.samples[0]
    assert first.file_name == f"{_sequence(9, 2)}/{_sequence(9, 2)}_000001.jpg"
    assert first.image_path == root / "images" / first.file_name
    assert (first.subject, first.action_index, first.action, first.subaction) == (
        9,
        0,
        "Directions",
        1,
    )
    assert (first.camera_index, first.frame_index, first.image_size) == (1, 0, (1000, 1000))
    assert first.focal == (1000.0, 1100.0) and first.center == (500.0, 510.0)
    # Box (100, 200, 50, 100): x2 = 149, y2 = 299 -> w 49, h 99, centre (124.5, 249.5);
    # squared to 99 x 99, enlarged x1.25 to 123.75.
    assert first.bbox == pytest.approx((62.625, 187.625, 123.75, 123.75))
    # Pelvis (0, 0, 0) -> R·0 + t = t.
    assert first.root_cam == (10.0, 20.0, 5000.0) and first.root_depth == 5000.0
    # Joint 1 of frame 0 is (1, 2, 3): R·X = (-2, 1, 3), + t = (8, 21, 5003).
    np.testing.assert_allclose(first.joints_cam[1], [8.0, 21.0, 5003.0])
    # Thorax: midpoint of joints 11 (11, 22, 33) and 14 (14, 28, 42) = (12.5, 25, 37.5)
    # -> (-25, 12.5, 37.5) + t = (-15, 32.5, 5037.5).
    assert first.joints_cam.shape == (18, 3)
    np.testing.assert_allclose(first.joints_cam[17], [-15.0, 32.5, 5037.5])
    # Frame 64 has joints offset by 64 in x: its pelvis (64, 0, 0) -> (0, 64, 0) + t.
    assert data.samples[1].root_cam == (10.0, 84.0, 5000.0)


def test_protocol_1_is_s11_only(tmp_path: Path) -> None:
    data = load_dataset(_tree(tmp_path), 1)
    assert (data.metric, data.subjects, [s.subject for s in data.samples]) == (
        "PA-MPJPE",
        (11,),
        [11],
    )


def test_unknown_protocol(tmp_path: Path) -> None:
    assert _refused(load_dataset, _tree(tmp_path), 3) == (
        "protocol 3: only 1 (S11, PA-MPJPE) and 2 (S9+S11, MPJPE)"
    )


def test_input_aspect_shapes_the_box(tmp_path: Path) -> None:
    # Box (10, 20, 30, 30) of S11: x2 = 39, y2 = 49 -> 29 x 29 at centre (24.5, 34.5); a 256 high,
    # 192 wide input (aspect 0.75) makes it 29 x 38.667, then x1.25 -> 36.25 x 48.333.
    sample = load_dataset(_tree(tmp_path), 1, input_hw=(256, 192)).samples[0]
    w, h = 36.25, 29 / 0.75 * 1.25
    assert sample.bbox == pytest.approx((24.5 - w / 2, 34.5 - h / 2, w, h))


def test_limit_spreads_evenly(tmp_path: Path) -> None:
    data = load_dataset(_tree(tmp_path), 2, limit=2)
    assert [s.image_id for s in data.samples] == [900, 1100]  # first and last of three
    assert spread_subset(10, 4) == [0, 3, 6, 9]
    assert spread_subset(5, 5) == spread_subset(5, None) == [0, 1, 2, 3, 4]
    assert spread_subset(5, 9) == [0, 1, 2, 3, 4]
    assert spread_subset(5, 0) == [] and spread_subset(5, -1) == []
    assert spread_subset(5, 1) == [0]


def test_a_degenerate_box_drops_its_frame(tmp_path: Path) -> None:
    frames = {9: [(900, 0, [100, 200, 1, 1]), (901, 64, [0, 0, 20, 10])], 11: FRAMES[11]}
    data = load_dataset(_tree(tmp_path, frames), 2)
    assert data.dropped == 1 and [s.image_id for s in data.samples] == [901, 1100]


def test_every_box_degenerate(tmp_path: Path) -> None:
    frames = {
        9: [(900, 0, [5, 5, 0, 9]), (901, 64, [0, 0, 1, 1])],
        11: [(1100, 0, [2000, 0, 9, 9])],
    }
    root = _tree(tmp_path, frames)
    assert _refused(load_dataset, root, 2) == (
        f"{root / 'annotations'}: the box of every one of the 3 test frames is empty or outside "
        "its image (zero width or height after clipping; first image ids: 900, 901, 1100)"
    )


def test_no_test_frames(tmp_path: Path) -> None:
    root = _tree(tmp_path, {9: [(900, 1, [0, 0, 9, 9])], 11: [(1100, 63, [0, 0, 9, 9])]})
    assert _refused(load_dataset, root, 2) == (
        f"{root / 'annotations'}: no test frames (frame_idx % 64 == 0) for subjects 9, 11"
    )


# --- images --------------------------------------------------------------------------------------


def test_missing_images_are_named_with_the_layout(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    gone = load_dataset(root, 2).samples[1].image_path
    gone.unlink()
    assert _refused(load_dataset, root, 2) == (
        f"1 of 3 images are missing, assuming the reference layout (annotations in "
        f"{root / 'annotations'}, images under {root / 'images'}); first 1: {gone}; pass "
        "images DIR if the images are elsewhere, or skip_missing to evaluate the frames "
        "whose images exist"
    )
    assert len(load_dataset(root, 2, require_images=False)) == 3
    kept = load_dataset(root, 2, skip_missing=True)
    assert [s.image_id for s in kept.samples] == [900, 1100] and kept.skipped == (gone,)
    assert [s.image_id for s in load_dataset(root, 2, skip_missing=True, limit=1).samples] == [900]


def test_only_the_first_five_missing_images_are_listed(tmp_path: Path) -> None:
    frames = {9: [(900 + i, 64 * i, [0, 0, 9, 9]) for i in range(7)], 11: FRAMES[11]}
    root = _tree(tmp_path, frames)
    paths = [s.image_path for s in load_dataset(root, 2).samples]
    for path in paths[:6]:
        path.unlink()
    message = _refused(load_dataset, root, 2)
    assert message.startswith("6 of 8 images are missing")
    assert f"first 5: {', '.join(map(str, paths[:5]))}; pass images" in message


def test_skip_missing_with_nothing_left(tmp_path: Path) -> None:
    root = _tree(tmp_path, images=False)
    (root / "images").mkdir()
    message = _refused(load_dataset, root, 2, skip_missing=True)
    assert message.startswith("3 of 3 images are missing, assuming the reference layout")
    assert message.endswith("; nothing to evaluate; pass images DIR if the images are elsewhere")


# --- layouts -------------------------------------------------------------------------------------


def test_kaggle_layout_with_both_spellings(tmp_path: Path) -> None:
    root = _tree(tmp_path, images=False, annotations="annotations (1)/annotations")
    (root / "S9_ACT2_16").mkdir()
    (root / "S11_ACT2_i6").mkdir()
    layout = detect_layout(root)
    assert layout.name == "kaggle" and layout.images_root is None
    assert layout.annotations_dir == root / "annotations (1)" / "annotations"
    assert layout.subject_dirs == ((9, root / "S9_ACT2_16"), (11, root / "S11_ACT2_i6"))
    assert layout.image_path("a/b.jpg", 11) == root / "S11_ACT2_i6" / "a/b.jpg"
    assert layout.image_path("a/b.jpg", 5) == root / "S5_ACT2_16" / "a/b.jpg"
    assert layout.describe() == (
        f"kaggle layout (annotations in {layout.annotations_dir}, images under "
        f"{root / 'S9_ACT2_16'}, {root / 'S11_ACT2_i6'})"
    )
    data = load_dataset(root, 2, require_images=False)
    assert data.samples[0].image_path == root / "S9_ACT2_16" / data.samples[0].file_name


def test_annotations_in_the_root_and_explicit_images(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r", images=False, annotations=".")
    images = tmp_path / "elsewhere"
    images.mkdir()
    layout = detect_layout(root, images)
    assert (layout.name, layout.annotations_dir, layout.images_root) == (
        "explicit",
        root.resolve(),
        images,
    )
    assert (
        layout.describe()
        == f"explicit layout (annotations in {root.resolve()}, images under {images})"
    )
    other = _tree(tmp_path / "o", images=False, annotations="ann")
    assert detect_layout(root, images, other / "ann").annotations_dir == other / "ann"


def test_layout_messages(tmp_path: Path) -> None:
    assert _refused(detect_layout, tmp_path / "nope") == (
        f"{tmp_path / 'nope'}: the Human3.6M root is not a directory"
    )
    assert _refused(detect_layout, tmp_path) == (
        f"{tmp_path}: no Human36M_subject*_data.json found (looked in 'annotations', "
        "'annotations (1)/annotations', 'annotations (1)', '.' under it)"
    )
    assert _refused(detect_layout, tmp_path, None, tmp_path) == (
        f"{tmp_path}: no Human36M_subject*_data.json in it"
    )
    root = _tree(tmp_path / "r", images=False)
    assert _refused(detect_layout, root, tmp_path / "no-images") == (
        f"{tmp_path / 'no-images'}: the images root is not a directory"
    )
    assert _refused(detect_layout, root) == (
        f"{root}: no images found: expected 'images/' (reference layout) or 'S9_ACT2_16/', "
        "'S11_ACT2_16/' (Kaggle layout); pass images DIR to name the images root"
    )


# --- RootNet files -------------------------------------------------------------------------------


def _rootnet(tmp_path: Path, entries: object) -> Path:
    path = tmp_path / "bbox_root.json"
    path.write_text(json.dumps(entries))
    return path


def test_rootnet_boxes_and_roots_replace_the_ground_truth(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    entries = [
        {"image_id": i, "bbox": [1, 2, 3, 4], "root_cam": [5, 6, 7 + i]} for i in (900, 901, 1100)
    ]
    entries[1] = {"image_id": 901, "bbox": [-5, 2, 3, 4], "root": [5, 6, 1e-3]}  # old key name
    path = _rootnet(tmp_path, entries)
    data = load_dataset(root, 2, bbox_root=path)
    assert data.bbox_source == str(path)
    assert [s.bbox for s in data.samples] == [(1, 2, 3, 4), (-5, 2, 3, 4), (1, 2, 3, 4)]
    assert [s.root_cam for s in data.samples] == [(5, 6, 907), (5, 6, 1e-3), (5, 6, 1107)]
    short = _rootnet(tmp_path, entries[:1])
    assert _refused(load_dataset, root, 2, bbox_root=short) == (
        f"{short}: no entry for 2 test frames of protocol 2 (first image ids: 901, 1100); is it "
        "the file for this protocol and these annotations?"
    )


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"image_id": 1}, "expected a JSON list of {image_id, bbox, root_cam} entries"),
        (
            [{"bbox": [1, 2, 3, 4], "root_cam": [1, 2, 3]}],
            "entry 0 is not {image_id, bbox[4], root_cam[3]}",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 3, 4]}],
            "entry 0 is not {image_id, bbox[4], root_cam[3]}",
        ),
        (
            [{"image_id": 1, "bbox": 5, "root_cam": [1, 2, 3]}],
            "entry 0 is not {image_id, bbox[4], root_cam[3]}",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 3], "root_cam": [1, 2, 3]}],
            "entry 0 has a bbox or root_cam of the wrong size",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 3, 4], "root_cam": [1, 2]}],
            "entry 0 has a bbox or root_cam of the wrong size",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 0, 4], "root_cam": [1, 2, 3]}],
            "entry 0 (image_id 1): bbox [1, 2, 0, 4] needs finite values, w and h > 0",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 3, -1], "root_cam": [1, 2, 3]}],
            "entry 0 (image_id 1): bbox [1, 2, 3, -1] needs finite values, w and h > 0",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 3, 0], "root_cam": [1, 2, 3]}],
            "entry 0 (image_id 1): bbox [1, 2, 3, 0] needs finite values, w and h > 0",
        ),
        (
            [{"image_id": 1, "bbox": [1, 2, 3, 4], "root_cam": [1, 2, 0]}],
            "entry 0 (image_id 1): root_cam [1, 2, 0] needs finite values, Z > 0",
        ),
        (
            [
                {"image_id": 7, "bbox": [1, 2, 3, 4], "root_cam": [1, 2, 3]},
                {"image_id": 7, "bbox": [1, 2, 3, 4], "root_cam": [1, 2, 3]},
            ],
            "image_id 7 appears twice",
        ),
    ],
)
def test_rootnet_file_refusals(tmp_path: Path, entries: object, message: str) -> None:
    path = _rootnet(tmp_path, entries)
    assert _refused(load_bbox_root, path) == f"{path}: {message}"


def test_non_finite_rootnet_values(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text('[{"image_id": 3, "bbox": [1, 2, 3, 4], "root_cam": [1, NaN, 3]}]')
    assert _refused(load_bbox_root, path) == (
        f"{path}: entry 0 (image_id 3): root_cam [1, nan, 3] needs finite values, Z > 0"
    )
    path.write_text('[{"image_id": 3, "bbox": [Infinity, 2, 3, 4], "root_cam": [1, 2, 3]}]')
    assert "bbox [inf, 2, 3, 4] needs finite values" in _refused(load_bbox_root, path)


# --- JSON files ----------------------------------------------------------------------------------


def test_json_file_refusals(tmp_path: Path, monkeypatch) -> None:
    assert (
        _refused(load_bbox_root, tmp_path / "none.json")
        == f"{tmp_path / 'none.json'}: file not found"
    )
    assert _refused(load_bbox_root, tmp_path) == f"{tmp_path}: not a regular file"
    bad = tmp_path / "bad.json"
    bad.write_text("[1,\n 2,, 3]")
    assert _refused(load_bbox_root, bad) == f"{bad}: not valid JSON (Expecting value at line 2)"
    bad.write_bytes(b'["\xff"]')
    assert _refused(load_bbox_root, bad).startswith(f"{bad}: cannot be read (")
    bad.write_text("[" * 100_000 + "]" * 100_000)
    assert _refused(load_bbox_root, bad) == f"{bad}: JSON nested too deeply to be annotations"
    fits = _rootnet(tmp_path, [])
    size = fits.stat().st_size
    monkeypatch.setattr(ds, "MAX_JSON_BYTES", size)
    assert load_bbox_root(fits) == {}
    monkeypatch.setattr(ds, "MAX_JSON_BYTES", size - 1)
    assert (
        _refused(load_bbox_root, fits)
        == f"{fits}: {size:,} bytes, over the {size - 1:,}-byte limit"
    )


# --- annotation records --------------------------------------------------------------------------


def _edit(root: Path, subject: int, kind: str, edit) -> Path:
    path = root / "annotations" / f"Human36M_subject{subject}_{kind}.json"
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))
    return path


def _first_image(content: dict) -> dict:
    return content["images"][0]


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("width", True, "width 'True' is not a number"),
        ("width", "1000", "width '1000' is not a number"),
        ("height", 0, "height 0 is not a whole number from 1 to 65,535"),
        ("width", 65_536, "width 65536 is not a whole number from 1 to 65,535"),
        ("height", 999.5, "height 999.5 is not a whole number from 1 to 65,535"),
        ("width", 2**70, "width a huge integer is not a whole number from 1 to 65,535"),
    ],
)
def test_image_sides(tmp_path: Path, field: str, value: object, shown: str) -> None:
    root = _tree(tmp_path)
    path = _edit(root, 9, "data", lambda c: _first_image(c).__setitem__(field, value))
    assert _refused(load_dataset, root, 2) == f"{path}: image 900: {shown}"


def test_image_sides_just_inside(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _edit(root, 9, "data", lambda c: _first_image(c).update(width=65_535, height=1000.0))
    sample = load_dataset(root, 2).samples[0]
    assert sample.image_size == (65_535, 1000) and type(sample.image_size[1]) is int
    _edit(root, 9, "data", lambda c: _first_image(c).update(width=1, height=1))
    assert load_dataset(root, 2).dropped == 1  # a 1x1 image leaves no box, but is a valid size


def test_box_of_the_wrong_size(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    path = _edit(root, 9, "data", lambda c: c["annotations"][0].__setitem__("bbox", [1, 2, 3]))
    assert (
        _refused(load_dataset, root, 2)
        == f"{path}: image 900: bbox [1, 2, 3] is not 4 finite numbers"
    )


def test_joints_of_the_wrong_shape_or_value(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    data_path = root / "annotations" / "Human36M_subject9_data.json"
    _edit(root, 9, "joint_3d", lambda c: c["2"]["1"]["0"].pop())
    assert _refused(load_dataset, root, 2) == (
        f"{data_path}: annotation of image 900 is incomplete or does not match "
        "Human36M_subject9_camera.json / Human36M_subject9_joint_3d.json (bad or missing 3D "
        "joints of frame 0: shape (16, 3), expected (17, 3))"
    )
    root = _tree(tmp_path / "nan")
    joints = _edit(root, 9, "joint_3d", lambda c: c["2"]["1"]["0"][3].__setitem__(0, float("inf")))
    assert _refused(load_dataset, root, 2) == (
        f"{joints}: image 900: 3D joints (action 2, subaction 1, frame 0) are not finite numbers "
        "within 100,000 mm of the world origin"
    )


def test_incomplete_records(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    path = _edit(root, 9, "data", lambda c: c["images"][0].pop("cam_idx"))
    assert _refused(load_dataset, root, 2).startswith(
        f"{path}: annotation of image 900 is incomplete or does not match"
    )
    _edit(root, 9, "data", lambda c: c["images"][0].pop("id"))
    assert _refused(load_dataset, root, 2) == f"{path}: an images entry has no integer id"
    _edit(root, 9, "data", lambda c: c.pop("annotations"))
    assert _refused(load_dataset, root, 2) == (
        f"{path}: expected a COCO-style object with images, annotations"
    )


def test_camera_records(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    path = _edit(root, 9, "camera", lambda c: c["1"].__setitem__("f", [1.0, 2.0, 3.0]))
    assert _refused(load_dataset, root, 2) == f"{path}: camera 1 needs f and c with two values each"
    _edit(root, 9, "camera", lambda c: c["1"].__setitem__("t", [1.0, 2.0]))
    assert _refused(load_dataset, root, 2) == f"{path}: camera 1 is not {{R 3x3, t 3, f 2, c 2}}"
    _edit(root, 9, "camera", lambda c: c.update({"1": dict(CAMERA, f=[0.0, 5.0])}))
    assert _refused(load_dataset, root, 2) == (
        f"{path}: camera 1: focal length f [0, 5] must be positive"
    )
    path.write_text("[1, 2]")
    assert _refused(load_dataset, root, 2) == f"{path}: expected an object keyed by camera index"


def test_camera_problems_by_hand() -> None:
    rotation = np.asarray(ROTATION)
    assert camera_problem(rotation, np.zeros(3), (1e-9, 1e-9), (0.0, 0.0)) is None
    assert camera_problem(rotation, np.zeros(3), (1.0, -1.0), (0.0, 0.0)) == (
        "focal length f [1, -1] must be positive"
    )
    assert camera_problem(rotation, np.array([0.0, np.nan, 1.0]), (1.0, 1.0), (0.0, 0.0)) == (
        "t has non-finite values ([0, nan, 1])"
    )
    assert camera_problem(rotation, np.zeros(3), (1.0, 1.0), (np.inf, 0.0)) == (
        "c has non-finite values ([inf, 0])"
    )
    # Scaling the Z row by s leaves R·Rᵀ - I with s² - 1 in one place and det = s.
    inside = rotation * np.array([[1.0], [1.0], [np.sqrt(1.0099)]])
    outside = rotation * np.array([[1.0], [1.0], [np.sqrt(1.0101)]])
    assert camera_problem(inside, np.zeros(3), (1.0, 1.0), (0.0, 0.0)) is None
    assert camera_problem(outside, np.zeros(3), (1.0, 1.0), (0.0, 0.0)) == (
        "R is not a rotation (max |R·Rᵀ - I| 0.0101, det 1.01; both within 0.01 of a rotation's)"
    )


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("s_09_act_02_subact_01_ca_01/x.jpg", 0),
        ("act_16/s_09_act_16_x.jpg", 14),
        ("contact/act_05.jpg", 3),
    ],
)
def test_action_index_by_hand(name: str, index: int) -> None:
    assert action_index_from_file_name(name) == index


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "s_09_act_01_subact_01.jpg",
            "s_09_act_01_subact_01.jpg: action number 1 is outside 2..16",
        ),
        (
            "s_09_act_17_subact_01.jpg",
            "s_09_act_17_subact_01.jpg: action number 17 is outside 2..16",
        ),
        ("s_09_subact_01.jpg", "s_09_subact_01.jpg: no 'act_NN' component in the file name"),
    ],
)
def test_action_refusals(name: str, message: str) -> None:
    assert _refused(action_index_from_file_name, name) == message


def test_small_positive_rootnet_boxes_are_boxes(tmp_path: Path) -> None:
    path = _rootnet(tmp_path, [{"image_id": 1, "bbox": [0, 0, 0.5, 0.5], "root_cam": [0, 0, 1]}])
    assert load_bbox_root(path)[1].bbox == (0.0, 0.0, 0.5, 0.5)


def test_numbers_in_messages_are_few() -> None:
    assert ds._numbers(range(9)) == "[0, 1, 2, 3, 4, 5, 6, 7, 8]"
    assert ds._numbers(range(10)) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, ...]"
    assert ds._numbers([1 / 3]) == "[0.333333]"


def test_a_joint_at_zero_depth_projects_finitely() -> None:
    # Z = 0 becomes Z = 1e-8 (the reference's cam2pixel): u = 1e-6 / 1e-8 x 2 + 3 = 203.
    pixel = camera_to_pixel(
        np.array([[1e-6, -1e-6, 0.0]]), np.array([2.0, 2.0]), np.array([3.0, 4.0])
    )
    np.testing.assert_allclose(pixel, [[203.0, -196.0]])


def test_camera_value_names_and_the_rotation_bound_itself() -> None:
    rotation = np.asarray(ROTATION)
    nan_r = rotation.copy()
    nan_r[1, 1] = np.nan
    assert camera_problem(nan_r, np.zeros(3), (1.0, 1.0), (0.0, 0.0)) == (
        "R has non-finite values ([0, -1, 0, 1, nan, 0, 0, 0, 1])"
    )
    assert camera_problem(rotation, np.zeros(3), (np.inf, 1.0), (0.0, 0.0)) == (
        "f has non-finite values ([inf, 1])"
    )
    # An off-diagonal 0.01 puts max |R·Rᵀ - I| at exactly 0.01 (det stays 1): still a rotation.
    edge = np.array([[1.0, 0.01, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert float(np.abs(edge @ edge.T - np.eye(3)).max()) == 0.01
    assert camera_problem(edge, np.zeros(3), (1.0, 1.0), (0.0, 0.0)) is None


def test_every_kaggle_subject_folder_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, images=False, annotations="annotations (1)")
    names = ["S1_ACT2_16", "S5_ACT2_16", "S6_ACT2_i6", "S7_ACT2_16", "S8_ACT2_16", "S9_ACT2_16"]
    for name in names:
        (root / name).mkdir()
    layout = detect_layout(root)
    assert layout.subject_dirs == tuple(
        (int(name[1:].split("_")[0]), root / name) for name in names
    )
    assert layout.annotations_dir == root / "annotations (1)"


def test_records_of_the_wrong_kind(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    data = root / "annotations" / "Human36M_subject9_data.json"
    data.write_text(json.dumps(["images", "annotations"]))
    assert _refused(load_dataset, root, 2) == (
        f"{data}: expected a COCO-style object with images, annotations"
    )
    content = _subject_files(9, FRAMES[9])["data"]
    content["annotations"] = [5]  # type: ignore[index]
    data.write_text(json.dumps(content))
    assert _refused(load_dataset, root, 2).startswith(
        f"{data}: annotation of image 5 is incomplete or does not match"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("x" * 50, f"width {'x' * 40!r} is not a number"),
        (2**63, "width a huge integer is not a whole number from 1 to 65,535"),
        (2**63 - 1, f"width {2**63 - 1} is not a whole number from 1 to 65,535"),
    ],
)
def test_odd_widths_are_shown_briefly(tmp_path: Path, value: object, shown: str) -> None:
    root = _tree(tmp_path)
    path = _edit(root, 9, "data", lambda c: _first_image(c).__setitem__("width", value))
    assert _refused(load_dataset, root, 2) == f"{path}: image 900: {shown}"


def test_rootnet_missing_several_frames(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    entry = {"image_id": 1100, "bbox": [1, 2, 3, 4], "root_cam": [5, 6, 7]}
    path = _rootnet(tmp_path, [entry])
    assert _refused(load_dataset, root, 2, bbox_root=path) == (
        f"{path}: no entry for 2 test frames of protocol 2 (first image ids: 900, 901); is it "
        "the file for this protocol and these annotations?"
    )


def test_first_five_ids_only(tmp_path: Path) -> None:
    frames = {9: [(900 + i, 64 * i, [0, 0, 1, 1]) for i in range(6)], 11: [(1100, 0, [0, 0, 1, 1])]}
    root = _tree(tmp_path / "t", frames)
    assert _refused(load_dataset, root, 2).endswith(
        "(zero width or height after clipping; first image ids: 900, 901, 902, 903, 904)"
    )
    path = _rootnet(tmp_path, [])
    assert "(first image ids: 900, 901, 902, 903, 904); is it" in _refused(
        load_dataset, root, 2, bbox_root=path
    )


def test_defaults_and_explicit_places(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    assert load_dataset(root).protocol == 2  # the default protocol
    moved = tmp_path / "elsewhere"
    (root / "annotations").rename(moved)
    data = load_dataset(tmp_path / "t", annotations=moved, images=root / "images")
    assert data.layout.name == "explicit" and data.layout.annotations_dir == moved
    assert len(data) == 3


def test_action_names_from_file_names() -> None:
    # Human3.6M's action order (facts §4.6): act_02 is Directions, act_16 WalkTogether.
    assert ds.action_name_from_file_name("s_09_act_02_subact_01_ca_01/x.jpg") == "Directions"
    assert ds.action_name_from_file_name("s_11_act_16_subact_02_ca_04/x.jpg") == "WalkTogether"


def test_relative_roots(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "flat", images=False, annotations=".")
    (tmp_path / "pictures").mkdir()
    flat = detect_layout(Path("flat"), Path("pictures"))
    # Annotations in the root itself are named by their real path, not "flat/.".
    assert flat.annotations_dir == (tmp_path / "flat").resolve()
    assert flat.root == Path("flat") and flat.images_root == Path("pictures")
    _tree(tmp_path / "ref")
    reference = detect_layout(Path("ref"))
    assert reference.annotations_dir == Path("ref") / "annotations"
    assert reference.images_root == Path("ref") / "images" and reference.root == Path("ref")
