"""Human3.6M reading: actions, layouts, missing images, RootNet files, protocols."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from converter.core.errors import DatasetError, OutputError, OutputExistsError
from converter.h36m.dataset import (
    ACTION_NAMES,
    action_index_from_file_name,
    action_name_from_file_name,
    detect_layout,
    load_bbox_root,
    load_dataset,
    spread_subset,
)
from converter.h36m.preprocess import process_bbox
from converter.h36m.synthetic import BBOX_ROOT_FILE, make_synthetic_h36m

# The real RootNet boxes and root depths (public, MIT, from the ConvNeXtPose release): test data.
ROOTNET_DIR = Path(__file__).resolve().parents[1] / "data" / "h36m_bbox_root"


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # "act" and "contact" in the parent path must not confuse the action parser.
    root = tmp_path_factory.mktemp("contact_act_99") / "Human36M"
    make_synthetic_h36m(root, "reference")
    return root


@pytest.fixture(scope="module")
def kaggle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kaggle") / "human3-6m-for-convnextpose"
    make_synthetic_h36m(root, "kaggle")
    return root


# --- (c) actions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "index", "name"),
    [
        ("s_09_act_02_subact_01_ca_01/s_09_act_02_subact_01_ca_01_000001.jpg", 0, "Directions"),
        ("s_11_act_16_subact_02_ca_04/s_11_act_16_subact_02_ca_04_000065.jpg", 14, "WalkTogether"),
        ("s_09_act_14_subact_02_ca_03/s_09_act_14_subact_02_ca_03_000129.jpg", 12, "Walking"),
        ("s_11_act_07_subact_01_ca_02/s_11_act_07_subact_01_ca_02_000001.jpg", 5, "Posing"),
        # the sequence folder alone, or a file without the folder
        ("s_09_act_10_subact_01_ca_01_000001.jpg", 8, "SittingDown"),
    ],
)
def test_action_parsed_from_file_name(file_name: str, index: int, name: str) -> None:
    assert action_index_from_file_name(file_name) == index
    assert action_name_from_file_name(file_name) == name


def test_action_parse_ignores_subact_and_rejects_bad_names() -> None:
    # "subact_01" must not be read as action 01
    assert action_index_from_file_name("x/subact_01_s_09_act_05.jpg") == 3
    with pytest.raises(DatasetError, match="no 'act_NN'"):
        action_index_from_file_name("images/frame_000001.jpg")
    with pytest.raises(DatasetError, match=r"outside 2\.\.16"):
        action_index_from_file_name("s_09_act_17_subact_01_ca_01/a.jpg")


def test_dataset_actions_ignore_act_in_absolute_path(reference_root: Path) -> None:
    assert "act" in str(reference_root)  # the parent is named contact_act_99
    dataset = load_dataset(reference_root, 2)
    assert {s.action for s in dataset.samples} == {"Directions", "Walking"}
    for sample in dataset.samples:
        assert sample.action_index == int(sample.file_name.split("_act_")[1][:2]) - 2


# --- layouts ------------------------------------------------------------------------------


def test_reference_layout_detected(reference_root: Path) -> None:
    layout = detect_layout(reference_root)
    assert layout.name == "reference"
    assert layout.annotations_dir == reference_root / "annotations"
    path = layout.image_path("s_09_act_02_subact_01_ca_01/x.jpg", 9)
    assert path == reference_root / "images" / "s_09_act_02_subact_01_ca_01" / "x.jpg"


def test_kaggle_layout_detected(kaggle_root: Path) -> None:
    layout = detect_layout(kaggle_root)
    assert layout.name == "kaggle"
    assert layout.annotations_dir == kaggle_root / "annotations (1)" / "annotations"
    assert layout.image_path("s_09_a/x.jpg", 9) == kaggle_root / "S9_ACT2_16" / "s_09_a" / "x.jpg"
    assert layout.image_path("s_11_a/x.jpg", 11) == kaggle_root / "S11_ACT2_16" / "s_11_a" / "x.jpg"
    dataset = load_dataset(kaggle_root, 2)
    assert len(dataset) == 93
    assert not any(p.is_symlink() for p in kaggle_root.rglob("*"))


def test_explicit_images_root(reference_root: Path, tmp_path: Path) -> None:
    # annotations in one place, images somewhere else entirely
    shutil.copytree(reference_root / "annotations", tmp_path / "annotations")
    layout = detect_layout(tmp_path, images=reference_root / "images")
    assert layout.name == "explicit"
    dataset = load_dataset(tmp_path, 1, images=reference_root / "images")
    assert all(s.image_path.is_relative_to(reference_root / "images") for s in dataset.samples)


def test_layout_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        detect_layout(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no Human36M_subject"):
        detect_layout(tmp_path)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "Human36M_subject9_data.json").write_text("{}")
    with pytest.raises(DatasetError, match="no images found") as info:
        detect_layout(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_images_reported_before_inference(kaggle_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "partial"
    shutil.copytree(kaggle_root, root)
    removed = sorted((root / "S11_ACT2_16").rglob("*.jpg"))[:7]
    for path in removed:
        path.unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset(root, 2)
    message = str(info.value)
    assert "7 of 93 images are missing" in message
    assert "kaggle layout" in message
    listed = [p for p in removed if str(p) in message]
    assert len(listed) == 5  # the first five, in test order
    assert "\n" not in message


def test_missing_annotation_file_named(reference_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "r"
    shutil.copytree(reference_root / "annotations", root / "annotations")
    (root / "images").mkdir()
    (root / "annotations" / "Human36M_subject11_camera.json").unlink()
    with pytest.raises(DatasetError, match=r"Human36M_subject11_camera\.json: file not found"):
        load_dataset(root, 1)


# --- protocols, sampling, geometry --------------------------------------------------------


def test_protocols_sampling_and_order(reference_root: Path) -> None:
    p2 = load_dataset(reference_root, 2)
    p1 = load_dataset(reference_root, 1)
    assert p2.metric == "MPJPE" and p1.metric == "PA-MPJPE"
    # 2 subjects x 2 actions x 2 subactions x 4 cameras x 3 frames, less S11's absent sequence
    assert len(p2) == 93 and len(p1) == 45
    assert all(s.frame_index % 64 == 0 for s in p2.samples)  # frame 32 is annotated, not tested
    subjects = [s.subject for s in p2.samples]
    assert subjects == sorted(subjects)  # subject 9 first, then 11, annotation order inside
    assert {s.image_id for s in p1.samples} <= {s.image_id for s in p2.samples}
    assert p2.samples[0].file_name.endswith("_000001.jpg")


def test_thorax_and_camera_geometry(reference_root: Path) -> None:
    dataset = load_dataset(reference_root, 2)
    annotations = json.loads(
        (reference_root / "annotations" / "Human36M_subject9_data.json").read_text()
    )
    raw_boxes = {a["image_id"]: a["bbox"] for a in annotations["annotations"]}
    for sample in dataset.samples[:20]:
        joints = sample.joints_cam
        assert joints.shape == (18, 3)
        np.testing.assert_allclose(joints[17], (joints[11] + joints[14]) / 2)
        assert sample.root_cam == pytest.approx(tuple(joints[0]))
        # GT joints project inside the processed box (1.2 x extent, then x1.25)
        u = joints[:17, 0] / joints[:17, 2] * sample.focal[0] + sample.center[0]
        v = joints[:17, 1] / joints[:17, 2] * sample.focal[1] + sample.center[1]
        x, y, w, h = sample.bbox
        assert (u > x).all() and (u < x + w).all() and (v > y).all() and (v < y + h).all()
        if sample.subject == 9:
            width, height = sample.image_size
            assert sample.bbox == process_bbox(raw_boxes[sample.image_id], width, height)


def test_limit_spreads_over_the_set(reference_root: Path) -> None:
    assert spread_subset(10, None) == list(range(10))
    assert spread_subset(10, 3) == [0, 4, 9]  # numpy rounds halves to even
    dataset = load_dataset(reference_root, 2, limit=8)
    assert len(dataset) == 8
    assert {s.subject for s in dataset.samples} == {9, 11}
    assert {s.action for s in dataset.samples} == {"Directions", "Walking"}


# --- RootNet files ------------------------------------------------------------------------


def test_synthetic_bbox_root_replaces_boxes_and_roots(reference_root: Path) -> None:
    bbox_root = reference_root / BBOX_ROOT_FILE
    table = load_bbox_root(bbox_root)
    dataset = load_dataset(reference_root, 1, bbox_root=bbox_root)
    assert dataset.bbox_source == str(bbox_root)
    for sample in dataset.samples:
        assert sample.bbox == table[sample.image_id].bbox
        assert sample.root_cam == table[sample.image_id].root_cam
        assert sample.root_depth != pytest.approx(sample.joints_cam[0, 2], abs=1e-6)


def test_bbox_root_without_an_entry_is_an_error(reference_root: Path, tmp_path: Path) -> None:
    entries = json.loads((reference_root / BBOX_ROOT_FILE).read_text())
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(entries[:-3]))
    with pytest.raises(DatasetError, match=r"no entry for 3 test frames") as info:
        load_dataset(reference_root, 2, bbox_root=partial)
    assert str(partial) in str(info.value)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1, "bbox": [1, 2]}]')
    with pytest.raises(DatasetError, match=r"broken\.json: entry 0"):
        load_bbox_root(broken)


@pytest.mark.parametrize(
    ("name", "count", "first_id", "last_id"),
    [
        ("protocol2_S9_S11.json", 8695, 1559752, 2108555),
        ("protocol1_S11.json", 3683, 1877420, 2108555),
    ],
)
def test_real_rootnet_files_parse_and_look_up(
    name: str, count: int, first_id: int, last_id: int
) -> None:
    path = ROOTNET_DIR / name
    raw = json.loads(path.read_text())
    table = load_bbox_root(path)
    assert len(table) == len(raw) == count
    assert min(table) == first_id and max(table) == last_id
    # every id maps to its own entry, not a neighbour's
    for entry in raw[:: max(1, count // 500)]:
        found = table[entry["image_id"]]
        assert found.bbox == tuple(entry["bbox"])
        assert found.root_cam == tuple(entry["root_cam"])
    boxes = np.array([e.bbox for e in table.values()])
    np.testing.assert_allclose(boxes[:, 2], boxes[:, 3])  # RootNet boxes are already square
    depths = np.array([e.root_cam[2] for e in table.values()])
    assert depths.min() > 2000 and depths.max() < 10000  # camera-to-pelvis distances in mm
    # test frames are every 64th frame of a sequence, with consecutive global image ids
    steps = np.diff(sorted(table))
    assert np.mean(steps == 64) > 0.95


def test_real_rootnet_protocol1_frames_are_the_s11_part_of_protocol2() -> None:
    p1 = load_bbox_root(ROOTNET_DIR / "protocol1_S11.json")
    p2 = load_bbox_root(ROOTNET_DIR / "protocol2_S9_S11.json")
    assert set(p1) <= set(p2)
    s11_in_p2 = [i for i in p2 if i >= min(p1)]
    assert len(s11_in_p2) == len(p1)


def test_action_names_table() -> None:
    assert len(ACTION_NAMES) == 15
    assert ACTION_NAMES[0] == "Directions" and ACTION_NAMES[14] == "WalkTogether"


def test_bbox_root_that_is_not_a_regular_file_or_nests_deeply(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "bbox.json"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file"):
        load_bbox_root(fifo)  # used to hang forever
    with pytest.raises(DatasetError, match="not a regular file"):
        load_bbox_root("/dev/zero")  # used to read until memory ran out
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError, match="nested too deeply"):
        load_bbox_root(deep)


# --- --skip-missing --------------------------------------------------------------------------


def test_skip_missing_evaluates_the_frames_whose_images_exist(kaggle_root, tmp_path) -> None:
    root = tmp_path / "partial"
    shutil.copytree(kaggle_root, root)
    full = load_dataset(kaggle_root, 2)
    removed = [s.image_path for s in full.samples if s.subject == 11][:7]
    for path in removed:
        (root / path.relative_to(kaggle_root)).unlink()
    expected = [root / p.relative_to(kaggle_root) for p in removed]
    with pytest.raises(DatasetError, match="or skip_missing to evaluate the frames whose"):
        load_dataset(root, 2)
    partial = load_dataset(root, 2, skip_missing=True)
    assert list(partial.skipped) == expected  # in test order
    assert len(partial) == 93 - 7
    assert not {s.image_path for s in partial.samples} & set(expected)
    # the limit spreads over the frames that are there: first and last present frame kept
    limited = load_dataset(root, 2, skip_missing=True, limit=4)
    assert len(limited) == 4 and list(limited.skipped) == expected
    ids = [s.image_id for s in partial.samples]
    assert [s.image_id for s in limited.samples] == [ids[0], ids[28], ids[57], ids[85]]
    assert load_dataset(kaggle_root, 2, skip_missing=True).skipped == ()


def test_skip_missing_with_no_image_at_all_is_still_an_error(reference_root, tmp_path) -> None:
    root = tmp_path / "annotations_only"
    shutil.copytree(reference_root / "annotations", root / "annotations")
    (root / "images").mkdir()
    with pytest.raises(DatasetError, match=r"45 of 45 images are missing.*nothing to evaluate"):
        load_dataset(root, 1, skip_missing=True)


# --- the synthetic set as an output ----------------------------------------------------------


def test_synthetic_set_under_an_unwritable_place_is_one_error() -> None:
    with pytest.raises(OutputError, match=r"^/proc/cnp-h36m/annotations: cannot create"):
        make_synthetic_h36m("/proc/cnp-h36m")


def test_synthetic_set_keeps_existing_files_unless_told(tmp_path: Path) -> None:
    target = tmp_path / "annotations" / "Human36M_subject9_data.json"
    target.parent.mkdir()
    target.write_text("mine")
    with pytest.raises(OutputExistsError, match=r"Human36M_subject9_data\.json"):
        make_synthetic_h36m(tmp_path)
    assert target.read_text() == "mine"
    make_synthetic_h36m(tmp_path, overwrite=True)
    assert json.loads(target.read_text())["images"][0]["id"] == 1
