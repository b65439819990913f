"""Annotations no frame can have are refused while reading, before any inference: one line naming
the file, the record and what is wrong. Each bound has a case just inside and just outside."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from converter.core.errors import DatasetError
from converter.h36m.dataset import (
    MAX_IMAGE_SIDE,
    ROTATION_TOLERANCE,
    camera_problem,
    load_bbox_root,
    load_dataset,
    whole_number,
)
from converter.h36m.synthetic import BBOX_ROOT_FILE

ROOTNET_DIR = Path(__file__).resolve().parents[1] / "data" / "h36m_bbox_root"
DATA, CAMERA, JOINTS = (f"Human36M_subject9_{kind}.json" for kind in ("data", "camera", "joint_3d"))


@pytest.fixture(scope="module")
def synthetic_root(synthetic_set) -> Path:
    return synthetic_set("reference")


def _edited(
    synthetic_root: Path, tmp_path: Path, name: str, edit: Callable[[object], None]
) -> tuple[Path, Path]:
    """A copy of the annotations with one file edited; the images stay where they are."""
    annotations = tmp_path / "annotations"
    shutil.copytree(synthetic_root / "annotations", annotations)
    path = annotations / name
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))  # NaN and Infinity are written as JSON's NaN/Infinity
    return tmp_path, path


def _load(root: Path, synthetic_root: Path):
    return load_dataset(root, 2, images=synthetic_root / "images")


def _refused(root: Path, synthetic_root: Path, path: Path, *expected: str) -> str:
    with pytest.raises(DatasetError) as info:
        _load(root, synthetic_root)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for text in expected:
        assert text in message, message
    return message


def _first_test_image_id(data: dict) -> int:
    return next(image["id"] for image in data["images"] if image["frame_idx"] % 64 == 0)


def _set_image(field: str, value: object) -> Callable[[object], None]:
    def edit(data) -> None:
        image_id = _first_test_image_id(data)
        next(image for image in data["images"] if image["id"] == image_id)[field] = value

    return edit


def _set_box(box: list[float]) -> Callable[[object], None]:
    def edit(data) -> None:
        image_id = _first_test_image_id(data)
        next(a for a in data["annotations"] if a["image_id"] == image_id)["bbox"] = box

    return edit


def test_the_synthetic_set_and_the_real_rootnet_files_pass(synthetic_root: Path) -> None:
    assert len(load_dataset(synthetic_root, 2)) == 93
    assert len(load_bbox_root(ROOTNET_DIR / "protocol2_S9_S11.json")) == 8695
    assert len(load_bbox_root(ROOTNET_DIR / "protocol1_S11.json")) == 3683


# --- cameras ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "index", "value", "expected"),
    [
        ("f", 0, 0.0, "focal length f [0, 1143.78] must be positive"),
        ("f", 1, -1145.0, "focal length f [1145.05, -1145] must be positive"),
        ("f", 0, float("nan"), "f has non-finite values"),
        ("c", 1, float("inf"), "c has non-finite values"),
        ("t", 2, float("nan"), "t has non-finite values"),
    ],
)
def test_bad_camera_values(synthetic_root, tmp_path, field, index, value, expected) -> None:
    def edit(cameras) -> None:
        cameras["1"][field][index] = value

    root, path = _edited(synthetic_root, tmp_path, CAMERA, edit)
    _refused(root, synthetic_root, path, "camera 1: ", expected)


def test_a_tiny_positive_focal_length_is_a_focal_length(synthetic_root, tmp_path) -> None:
    def edit(cameras) -> None:
        cameras["1"]["f"][0] = 1e-9

    root, _ = _edited(synthetic_root, tmp_path, CAMERA, edit)
    assert len(_load(root, synthetic_root)) == 93


def test_an_all_zero_rotation_is_refused(synthetic_root, tmp_path) -> None:
    def edit(cameras) -> None:
        cameras["2"]["R"] = [[0.0] * 3 for _ in range(3)]

    root, path = _edited(synthetic_root, tmp_path, CAMERA, edit)
    # R·Rᵀ = 0: off the identity by 1; det 0
    _refused(root, synthetic_root, path, "camera 2: R is not a rotation", "|R·Rᵀ - I| 1,", "det 0")


# A rotation scaled by s has R·Rᵀ = s²·I and det s³: with s = cbrt(1 + d), the determinant is off
# by d and the orthogonality by (1 + d)^(2/3) - 1 < d, so d alone decides.
@pytest.mark.parametrize(("det_error", "refused"), [(0.0099, False), (0.0101, True)])
def test_rotation_tolerance_just_inside_and_outside(det_error: float, refused: bool) -> None:
    angle = np.deg2rad(30.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )
    scaled = rotation * (1.0 + det_error) ** (1.0 / 3.0)
    problem = camera_problem(scaled, np.zeros(3), (1145.0, 1145.0), (512.0, 512.0))
    assert ROTATION_TOLERANCE == 0.01
    assert (problem is not None) == refused, problem


def test_a_mirror_is_not_a_rotation() -> None:
    mirror = np.diag([1.0, 1.0, -1.0])  # orthonormal, det -1
    problem = camera_problem(mirror, np.zeros(3), (1.0, 1.0), (0.0, 0.0))
    assert problem is not None and "det -1" in problem


def test_a_rotation_with_a_huge_entry_is_refused_without_a_warning() -> None:
    # 1e200 is finite, but R·Rᵀ overflows: numpy's overflow warning must not reach the terminal.
    huge = np.eye(3)
    huge[1, 2] = 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = camera_problem(huge, np.zeros(3), (1.0, 1.0), (0.0, 0.0))
    assert problem is not None and "|R·Rᵀ - I| inf" in problem


# --- images, boxes, joints ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("width", 1e9, "width 1e+09 is not a whole number from 1 to 65,535"),
        ("width", MAX_IMAGE_SIDE + 1, "width 65536 is not"),
        ("height", 0, "height 0 is not"),
        ("height", float("nan"), "height nan is not"),
        ("width", 10**400, "width a huge integer is not"),
        ("width", "1000", "width '1000' is not a number"),
    ],
)
def test_absurd_image_sizes(synthetic_root, tmp_path, field, value, expected) -> None:
    root, path = _edited(synthetic_root, tmp_path, DATA, _set_image(field, value))
    _refused(root, synthetic_root, path, "image 1: ", expected)


def test_the_largest_jpeg_side_is_accepted(synthetic_root, tmp_path) -> None:
    root, _ = _edited(synthetic_root, tmp_path, DATA, _set_image("width", MAX_IMAGE_SIDE))
    dataset = _load(root, synthetic_root)
    assert dataset.samples[0].image_size == (65535, 1002)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_boxes(synthetic_root, tmp_path, value: float) -> None:
    root, path = _edited(synthetic_root, tmp_path, DATA, _set_box([400.0, value, 100.0, 400.0]))
    _refused(root, synthetic_root, path, "image 1: bbox [400, ", "is not 4 finite numbers")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_joints(synthetic_root, tmp_path, value: float) -> None:
    def edit(joints) -> None:
        joints["2"]["1"]["64"][5][1] = value

    root, path = _edited(synthetic_root, tmp_path, JOINTS, edit)
    # image ids count frames 0, 32, 64, 128 of each sequence from 1: frame 64 of the first is 3
    _refused(
        root,
        synthetic_root,
        path,
        "image 3: 3D joints (action 2, subaction 1, frame 64) are not finite",
        "action 2, subaction 1, frame 64",
    )


def test_zero_area_boxes_are_named_instead_of_no_test_frames(synthetic_root, tmp_path) -> None:
    annotations = tmp_path / "annotations"
    shutil.copytree(synthetic_root / "annotations", annotations)
    for subject in (9, 11):
        path = annotations / f"Human36M_subject{subject}_data.json"
        data = json.loads(path.read_text())
        for annotation in data["annotations"]:
            annotation["bbox"][2] = 0.0  # zero width: process_bbox drops it
        path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as info:
        _load(tmp_path, synthetic_root)
    message = str(info.value)
    assert "every one of the 93 test frames is empty or outside its image" in message
    assert "first image ids: 1, 3, 4, 5, 7" in message and "no test frames" not in message


# --- RootNet files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "index", "value", "expected"),
    [
        ("bbox", 2, 0.0, "bbox [X, Y, 0, H] needs finite values, w and h > 0"),
        ("bbox", 3, -1.0, "w and h > 0"),
        ("bbox", 0, float("nan"), "bbox [nan,"),
        ("root_cam", 2, 0.0, "needs finite values, Z > 0"),
        ("root_cam", 0, float("inf"), "root_cam [inf,"),
    ],
)
def test_bad_rootnet_entries(synthetic_root, tmp_path, field, index, value, expected) -> None:
    entries = json.loads((synthetic_root / BBOX_ROOT_FILE).read_text())
    entries[4][field][index] = value
    box = entries[4]["bbox"]
    path = tmp_path / "bbox_root.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetError) as info:
        load_bbox_root(path)
    message = str(info.value)
    expected = expected.replace("X, Y", f"{box[0]:.6g}, {box[1]:.6g}").replace("H", f"{box[3]:.6g}")
    assert message.startswith(f"{path}: entry 4 (image_id {entries[4]['image_id']}): ")
    assert expected in message, message


@pytest.mark.parametrize(
    "image_id", ["1e400", "-Infinity", "NaN", '"x"', "null", "true", "IDP5", "IDM", '"IDQ"']
)
def test_a_rootnet_image_id_that_is_no_integer_is_one_line(synthetic_root, tmp_path, image_id):
    # Found by the fuzzer: 1e400 parses as inf, and int(inf) raised OverflowError (a traceback).
    text = (synthetic_root / BBOX_ROOT_FILE).read_text()
    first = json.loads(text)[0]["image_id"]
    path = tmp_path / "bbox_root.json"
    image_id = image_id.replace("IDP", f"{first}.").replace("IDM", f"{first - 1}.5")
    image_id = image_id.replace("IDQ", str(first))  # "7": a string, however it reads
    path.write_text(text.replace(f'"image_id": {first},', f'"image_id": {image_id},', 1))
    assert path.read_text() != text
    with pytest.raises(
        DatasetError, match=r"entry 0 is not \{image_id, bbox\[4\], root_cam\[3\]\}"
    ):
        load_bbox_root(path)


def test_a_rootnet_image_id_written_as_a_whole_float_is_that_id(synthetic_root, tmp_path) -> None:
    text = (synthetic_root / BBOX_ROOT_FILE).read_text()
    first = json.loads(text)[0]["image_id"]
    path = tmp_path / "bbox_root.json"
    path.write_text(text.replace(f'"image_id": {first},', f'"image_id": {first}.0,', 1))
    assert first in load_bbox_root(path) and path.read_text() != text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 7), (7.0, 7), (-3, -3), (0.0, 0), (2**70, 2**70)],
)
def test_whole_numbers_by_hand(value, expected) -> None:
    assert whole_number(value) == expected and type(whole_number(value)) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7.5, "7.5 is not a whole number"),
        (7.000001, "7 is not a whole number"),  # shown to 6 digits, refused all the same
        (float("inf"), "inf is not a whole number"),
        (float("nan"), "nan is not a whole number"),
        ("7", "'7' is not a number"),
        (True, "'True' is not a number"),
        (None, "'None' is not a number"),
        ([7], "'[7]' is not a number"),
    ],
)
def test_what_is_not_a_whole_number(value, message) -> None:
    with pytest.raises(ValueError) as info:
        whole_number(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "field", ["subject", "frame_idx", "action_idx", "subaction_idx", "cam_idx"]
)
def test_an_image_index_that_is_not_whole_is_refused(synthetic_root, tmp_path, field) -> None:
    def edit(data) -> None:
        image_id = _first_test_image_id(data)
        image = next(image for image in data["images"] if image["id"] == image_id)
        image[field] = image[field] + 0.5

    root, path = _edited(synthetic_root, tmp_path, DATA, edit)
    _refused(root, synthetic_root, path, f"{field} ", "is not a whole number")


def test_image_indices_written_as_whole_floats_read_the_same(synthetic_root, tmp_path) -> None:
    def edit(data) -> None:
        for image in data["images"]:
            for field in ("id", "subject", "frame_idx", "action_idx", "subaction_idx", "cam_idx"):
                image[field] = float(image[field])
        for annotation in data["annotations"]:
            annotation["image_id"] = float(annotation["image_id"])

    root, _ = _edited(synthetic_root, tmp_path, DATA, edit)
    floats, ints = _load(root, synthetic_root), load_dataset(synthetic_root, 2)
    assert [s.image_id for s in floats.samples] == [s.image_id for s in ints.samples]
    assert [s.camera_index for s in floats.samples] == [s.camera_index for s in ints.samples]


def test_a_rootnet_box_left_of_the_image_is_real_data(synthetic_root, tmp_path) -> None:
    entries = json.loads((synthetic_root / BBOX_ROOT_FILE).read_text())
    entries[0]["bbox"][0] = -155.6  # the real protocol 2 file has boxes starting at x = -155.6
    path = tmp_path / "bbox_root.json"
    path.write_text(json.dumps(entries))
    assert load_bbox_root(path)[entries[0]["image_id"]].bbox[0] == -155.6


# --- values a record can hold but no frame has (hostile input, round three) ----------------------


@pytest.mark.parametrize(
    "file_name",
    [
        "s_09_act_02_subact_01_ca_01/../../../../outside/act_02.jpg",
        "/etc/act_02_passwd.jpg",
        "\\\\server\\share\\act_02.jpg",
        "C:/act_02/x.jpg",
        "s_09_act_02/" + "x" * 300 + ".jpg",
        "",
        7,
    ],
)
def test_file_names_that_leave_the_images_folder_are_refused(
    synthetic_root, tmp_path, file_name
) -> None:
    root, path = _edited(synthetic_root, tmp_path, DATA, _set_image("file_name", file_name))
    message = _refused(root, synthetic_root, path, "file_name ")
    assert (
        "leaves the images folder" in message or "relative path" in message or "longer" in message
    )


def test_a_name_just_at_the_file_system_limit_is_read(synthetic_root, tmp_path) -> None:
    from converter.h36m.dataset import _relative_file_name

    at_limit = "s_09_act_02/" + "x" * 251 + ".jpg"  # 255 bytes: NAME_MAX
    assert _relative_file_name(at_limit) == at_limit
    with pytest.raises(Exception, match="longer than a file system allows"):
        _relative_file_name(at_limit.replace(".jpg", "x.jpg"))


@pytest.mark.parametrize("value", [float("inf"), 1e400, float("-inf")])
def test_infinite_ids_are_one_line(synthetic_root, tmp_path, value) -> None:
    root, path = _edited(synthetic_root, tmp_path, DATA, _set_image("subject", value))
    _refused(root, synthetic_root, path)


@pytest.mark.parametrize(
    ("value", "refused"), [(99_999.0, False), (100_001.0, True), (1e308, True)]
)
def test_joints_beyond_the_capture_volume(synthetic_root, tmp_path, value, refused) -> None:
    def edit(joints) -> None:
        action = next(iter(joints))
        subaction = next(iter(joints[action]))
        for frame in joints[action][subaction].values():
            frame[3][0] = value

    root, path = _edited(synthetic_root, tmp_path, JOINTS, edit)
    if refused:
        _refused(root, synthetic_root, path, "within 100,000 mm of the world origin")
    else:
        assert len(_load(root, synthetic_root)) == 93


@pytest.mark.parametrize(("value", "refused"), [(99_999.0, False), (100_001.0, True)])
def test_cameras_beyond_the_capture(synthetic_root, tmp_path, value, refused) -> None:
    def edit(cameras) -> None:
        cameras["1"]["t"][0] = value

    root, path = _edited(synthetic_root, tmp_path, CAMERA, edit)
    if refused:
        _refused(root, synthetic_root, path, "camera 1: ", "not a camera of this capture")
    else:
        _load(root, synthetic_root)
