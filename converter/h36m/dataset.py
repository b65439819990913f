"""Human3.6M test sets in the reference annotation format, from any of the common layouts.

Facts §4.1-4.3 and §4.7-4.8 of shared/reference/convnextpose-facts.md: three JSON files per
subject (``Human36M_subject{S}_data.json`` COCO-style images and annotations, ``_camera.json``,
``_joint_3d.json``), world-to-camera ``R·X + t``, the Thorax joint appended as the shoulders'
midpoint, Protocol 1 = S11 and Protocol 2 = S9 + S11, every 64th frame, boxes from ``process_bbox``
of the ground truth or taken as they are from a RootNet file.

Layouts are recognised from one root, so nobody needs symlinks:

* reference: ``ROOT/annotations/*.json`` and ``ROOT/images/<sequence>/<file>``;
* Kaggle: ``ROOT/annotations (1)/annotations/*.json``, ``ROOT/S9_ACT2_16/<sequence>/<file>`` and
  ``ROOT/S11_ACT2_16/<sequence>/<file>``;
* explicit: an images root given by the user, holding ``<sequence>/<file>``.

Every image is checked for existence before any inference runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.errors import DatasetError
from .preprocess import process_bbox

# Action index in file names is 2..16; index - 2 selects the name (facts §4.6).
ACTION_NAMES: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)  # fmt: skip
PROTOCOL_SUBJECTS: dict[int, tuple[int, ...]] = {1: (11,), 2: (9, 11)}
PROTOCOL_METRIC: dict[int, str] = {1: "PA-MPJPE", 2: "MPJPE"}
TEST_SAMPLING = 64
L_SHOULDER, R_SHOULDER = 11, 14
# The reference adds this to Z before dividing (cam2pixel), so a joint at Z=0 cannot divide by 0.
PROJECTION_EPS = 1e-8

KAGGLE_ANNOTATIONS = Path("annotations (1)") / "annotations"
# "_i6" is a misspelling that circulated in early Kaggle notebooks (facts §4.8).
KAGGLE_SUBJECT_DIRS = ("S{s}_ACT2_16", "S{s}_ACT2_i6")
ANNOTATION_DIR_CANDIDATES = (
    Path("annotations"),
    KAGGLE_ANNOTATIONS,
    Path("annotations (1)"),
    Path("."),
)

# "act_NN" not preceded by a letter, so "subact_01" does not match.
_ACTION_IN_NAME = re.compile(r"(?<![A-Za-z])act_(\d{2})")

# Annotation sanity bounds, checked while reading so bad values stop the run before inference.
# Real frames are 1000x1002 (or 1000x1000); 65,535 px is the largest side a JPEG can have.
MAX_IMAGE_SIDE = 65_535
# Human3.6M's capture volume is a few metres across; 100 m is no person in it, and 1e308 mm would
# overflow the camera transform.
MAX_WORLD_MM = 100_000.0
MAX_CAMERA_MM = 100_000.0  # a camera's distance from the world origin, by the same reasoning
MAX_NAME_BYTES = 255  # NAME_MAX: one path component
MAX_PATH_CHARS = 4096  # PATH_MAX
# A camera's R must be a rotation: max |R·Rᵀ - I| and |det R - 1| at most this. The real files
# hold rotations to ~1e-8; a matrix rounded to 3 decimals stays within ~4e-3, while an all-zero,
# scaled or mirrored matrix is off by far more.
ROTATION_TOLERANCE = 1e-2


def action_index_from_file_name(file_name: str) -> int:
    """0-based action index from a relative file name's ``act_NN`` component (NN - 2).

    The reference takes the first "act" anywhere in the absolute path, which breaks on a parent
    directory such as "/contact/". Here only the relative name's components are searched, the
    file's own name first.
    """
    for part in reversed(Path(file_name).parts):
        match = _ACTION_IN_NAME.search(part)
        if match:
            return _checked_action(int(match.group(1)) - 2, file_name)
    raise DatasetError(f"{file_name}: no 'act_NN' component in the file name")


def _checked_action(index: int, file_name: str) -> int:
    if not 0 <= index < len(ACTION_NAMES):
        raise DatasetError(f"{file_name}: action number {index + 2} is outside 2..16")
    return index


def action_name_from_file_name(file_name: str) -> str:
    return ACTION_NAMES[action_index_from_file_name(file_name)]


def world_to_camera(joints_world: np.ndarray, rotation: np.ndarray, translation: np.ndarray):
    """R·X + t for (..., 3) joints (the current JSON's convention, facts §4.1)."""
    return joints_world @ np.asarray(rotation).T + np.asarray(translation).reshape(3)


def camera_to_pixel(joints_cam: np.ndarray, focal: np.ndarray, center: np.ndarray) -> np.ndarray:
    """(..., 3) camera mm -> (..., 2) pixels: u = X/Z·fx + cx, v = Y/Z·fy + cy."""
    z = joints_cam[..., 2:3] + PROJECTION_EPS
    return joints_cam[..., :2] / z * np.asarray(focal) + np.asarray(center)


def add_thorax(joints: np.ndarray) -> np.ndarray:
    """Append the Thorax (shoulders' midpoint) to (..., 17, 3) joints -> (..., 18, 3)."""
    thorax = (joints[..., L_SHOULDER, :] + joints[..., R_SHOULDER, :]) / 2.0
    return np.concatenate([joints, thorax[..., None, :]], axis=-2)


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray = field(repr=False)  # (3, 3)
    translation: np.ndarray = field(repr=False)  # (3,)
    focal: tuple[float, float]
    center: tuple[float, float]


@dataclass(frozen=True)
class Sample:
    """One test frame: where its image is and everything the evaluation needs about it."""

    image_id: int
    file_name: str  # relative, "<sequence>/<sequence>_NNNNNN.jpg"
    image_path: Path
    subject: int
    action_index: int  # 0..14, see ACTION_NAMES
    subaction: int
    camera_index: int
    frame_index: int
    image_size: tuple[int, int]  # (width, height)
    # The processed GT box, or the RootNet box as is; None only before a rejected box is dropped.
    bbox: tuple[float, float, float, float] | None
    root_cam: tuple[float, float, float]  # GT pelvis in camera mm, or RootNet's estimate
    focal: tuple[float, float]
    center: tuple[float, float]
    joints_cam: np.ndarray = field(repr=False)  # (18, 3) ground truth, camera mm

    @property
    def action(self) -> str:
        return ACTION_NAMES[self.action_index]

    @property
    def root_depth(self) -> float:
        return self.root_cam[2]


@dataclass(frozen=True)
class Layout:
    """Where annotations and images are, and how a relative file name becomes a path."""

    name: str  # "reference", "kaggle" or "explicit"
    root: Path
    annotations_dir: Path
    images_root: Path | None  # reference / explicit: one root for all subjects
    subject_dirs: tuple[tuple[int, Path], ...] = ()  # kaggle: one root per subject

    def image_path(self, file_name: str, subject: int) -> Path:
        if self.images_root is not None:
            return self.images_root / file_name
        for number, directory in self.subject_dirs:
            if number == subject:
                return directory / file_name
        # A subject with no folder: point at the folder it should have, so the missing-image
        # report names it.
        return self.root / KAGGLE_SUBJECT_DIRS[0].format(s=subject) / file_name

    def describe(self) -> str:
        if self.images_root is not None:
            where = f"images under {self.images_root}"
        else:
            where = "images under " + ", ".join(str(d) for _, d in self.subject_dirs)
        return f"{self.name} layout (annotations in {self.annotations_dir}, {where})"


def _has_annotations(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("Human36M_subject*_data.json"))


def find_annotations_dir(root: Path) -> Path | None:
    for candidate in ANNOTATION_DIR_CANDIDATES:
        directory = root / candidate
        if _has_annotations(directory):
            return directory.resolve() if candidate == Path(".") else directory
    return None


def _kaggle_subject_dirs(root: Path) -> tuple[tuple[int, Path], ...]:
    found = []
    for subject in (1, 5, 6, 7, 8, 9, 11):
        for pattern in KAGGLE_SUBJECT_DIRS:
            directory = root / pattern.format(s=subject)
            if directory.is_dir():
                found.append((subject, directory))
                break
    return tuple(found)


def detect_layout(
    root: str | Path, images: str | Path | None = None, annotations: str | Path | None = None
) -> Layout:
    """Recognise the layout under root; images/annotations override what would be found."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: the Human3.6M root is not a directory")
    if annotations is not None:
        annotations_dir = Path(annotations)
        if not _has_annotations(annotations_dir):
            raise DatasetError(f"{annotations_dir}: no Human36M_subject*_data.json in it")
    else:
        found = find_annotations_dir(root)
        if found is None:
            looked = ", ".join(f"'{c}'" for c in ANNOTATION_DIR_CANDIDATES)
            raise DatasetError(
                f"{root}: no Human36M_subject*_data.json found (looked in {looked} under it)"
            )
        annotations_dir = found
    if images is not None:
        images_root = Path(images)
        if not images_root.is_dir():
            raise DatasetError(f"{images_root}: the images root is not a directory")
        return Layout("explicit", root, annotations_dir, images_root)
    if (root / "images").is_dir():
        return Layout("reference", root, annotations_dir, root / "images")
    subject_dirs = _kaggle_subject_dirs(root)
    if subject_dirs:
        return Layout("kaggle", root, annotations_dir, None, subject_dirs)
    raise DatasetError(
        f"{root}: no images found: expected 'images/' (reference layout) or "
        f"'S9_ACT2_16/', 'S11_ACT2_16/' (Kaggle layout)",
        remedies=[("images", "DIR to name the images root")],
    )


# ---------------------------------------------------------------------------------------------
# RootNet boxes and root depths


@dataclass(frozen=True)
class RootNetEntry:
    bbox: tuple[float, float, float, float]
    root_cam: tuple[float, float, float]


def load_bbox_root(path: str | Path) -> dict[int, RootNetEntry]:
    """A RootNet output file -> {image_id: entry}. Boxes are used as they are (already square)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of {{image_id, bbox, root_cam}} entries")
    table: dict[int, RootNetEntry] = {}
    for position, entry in enumerate(data):
        try:
            image_id = whole_number(entry["image_id"])
            bbox = tuple(float(v) for v in entry["bbox"])
            root = tuple(float(v) for v in entry.get("root_cam", entry.get("root")))
        except (KeyError, TypeError, ValueError, OverflowError):  # int(1e400) overflows
            raise DatasetError(
                f"{path}: entry {position} is not {{image_id, bbox[4], root_cam[3]}}"
            ) from None
        if len(bbox) != 4 or len(root) != 3:
            raise DatasetError(f"{path}: entry {position} has a bbox or root_cam of the wrong size")
        where = f"{path}: entry {position} (image_id {image_id})"
        # Boxes are used as they are (a crop of zero size has no affine transform) and the root
        # depth divides the back-projection; real boxes may start left of the image (x < 0).
        if not np.isfinite(bbox).all() or bbox[2] <= 0 or bbox[3] <= 0:
            raise DatasetError(f"{where}: bbox {_numbers(bbox)} needs finite values, w and h > 0")
        if not np.isfinite(root).all() or root[2] <= 0:
            raise DatasetError(f"{where}: root_cam {_numbers(root)} needs finite values, Z > 0")
        if image_id in table:
            raise DatasetError(f"{path}: image_id {image_id} appears twice")
        table[image_id] = RootNetEntry(bbox, root)  # type: ignore[arg-type]
    return table


# ---------------------------------------------------------------------------------------------
# The dataset


@dataclass(frozen=True)
class H36MDataset:
    protocol: int
    layout: Layout
    samples: tuple[Sample, ...]
    bbox_source: str  # "ground truth" or the RootNet file's path
    dropped: int = 0  # annotations whose box process_bbox rejected
    # Test frames left out because their image file is missing (load_dataset(skip_missing=True)).
    skipped: tuple[Path, ...] = ()

    @property
    def metric(self) -> str:
        return PROTOCOL_METRIC[self.protocol]

    @property
    def subjects(self) -> tuple[int, ...]:
        return PROTOCOL_SUBJECTS[self.protocol]

    def __len__(self) -> int:
        return len(self.samples)


# The largest real annotation file (S11's joint_3d) is ~200 MB; a FIFO or /dev/zero given as one
# would otherwise hang or fill memory.
MAX_JSON_BYTES = 1024**3


def _read_json(path: Path):
    try:
        if not path.exists():
            raise DatasetError(f"{path}: file not found")
        if not path.is_file():
            raise DatasetError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DatasetError(f"{path}: {size:,} bytes, over the {MAX_JSON_BYTES:,}-byte limit")
        with path.open("r", encoding="utf-8") as handle:
            return json.loads(handle.read(MAX_JSON_BYTES + 1))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to be annotations") from None


def _parse_cameras(path: Path, data: object) -> dict[int, Camera]:
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: expected an object keyed by camera index")
    cameras = {}
    for key, value in data.items():
        try:
            index = int(key)
            rotation = np.asarray(value["R"], dtype=np.float64).reshape(3, 3)
            translation = np.asarray(value["t"], dtype=np.float64).reshape(3)
            focal = tuple(float(v) for v in value["f"])
            center = tuple(float(v) for v in value["c"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{path}: camera {key} is not {{R 3x3, t 3, f 2, c 2}}") from None
        except OverflowError:  # JSON integers have no size limit; a float64 does
            too_large = "holds a number too large for a float"
            raise DatasetError(f"{path}: camera {key} {too_large}") from None
        if len(focal) != 2 or len(center) != 2:
            raise DatasetError(f"{path}: camera {key} needs f and c with two values each")
        problem = camera_problem(rotation, translation, focal, center)
        if problem:
            raise DatasetError(f"{path}: camera {key}: {problem}")
        cameras[index] = Camera(rotation, translation, focal, center)  # type: ignore[arg-type]
    return cameras


def camera_problem(rotation: np.ndarray, translation: np.ndarray, focal, center) -> str | None:
    """Why a camera cannot project (non-finite values, focal <= 0, R not a rotation), or None."""
    for name, values in (("R", rotation), ("t", translation), ("f", focal), ("c", center)):
        if not np.isfinite(values).all():
            return f"{name} has non-finite values ({_numbers(np.ravel(values))})"
    if min(focal) <= 0:
        return f"focal length f {_numbers(focal)} must be positive"
    if np.abs(translation).max() > MAX_CAMERA_MM or max(focal) > MAX_CAMERA_MM:
        return (
            f"t {_numbers(translation)} mm or f {_numbers(focal)} px is beyond "
            f"{MAX_CAMERA_MM:,.0f}: not a camera of this capture"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # a huge entry: inf here, refused below
        orthogonality = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
        determinant = float(np.linalg.det(rotation))
    if orthogonality > ROTATION_TOLERANCE or abs(determinant - 1.0) > ROTATION_TOLERANCE:
        return (
            f"R is not a rotation (max |R·Rᵀ - I| {orthogonality:.3g}, det {determinant:.3g}; "
            f"both within {ROTATION_TOLERANCE} of a rotation's)"
        )
    return None


def _numbers(values) -> str:
    """A few numbers for a message: at most 9, short."""
    shown = [f"{float(v):.6g}" for v in list(values)[:9]]
    return "[" + ", ".join(shown) + (", ...]" if len(values) > 9 else "]")


def _subject_samples(
    layout: Layout,
    subject: int,
    input_aspect: float,
    bbox_root: Mapping[int, RootNetEntry] | None,
) -> tuple[list[Sample], list[int], list[int]]:
    """The subject's test frames in annotation order; also the image ids of boxes process_bbox
    dropped and of frames RootNet lacks."""
    prefix = f"Human36M_subject{subject}"
    data_path = layout.annotations_dir / f"{prefix}_data.json"
    camera_path = layout.annotations_dir / f"{prefix}_camera.json"
    joints_path = layout.annotations_dir / f"{prefix}_joint_3d.json"
    data = _read_json(data_path)
    cameras = _parse_cameras(camera_path, _read_json(camera_path))
    joints = _read_json(joints_path)
    if not isinstance(data, Mapping) or "images" not in data or "annotations" not in data:
        raise DatasetError(f"{data_path}: expected a COCO-style object with images, annotations")
    try:
        images = {whole_number(image["id"]): image for image in data["images"]}
    except (KeyError, TypeError, ValueError, OverflowError):  # int(Infinity) overflows
        raise DatasetError(f"{data_path}: an images entry has no integer id") from None

    samples: list[Sample] = []
    dropped: list[int] = []
    missing_roots: list[int] = []
    for annotation in data["annotations"]:  # annotation order is the reference's test order
        try:
            image = images[whole_number(annotation["image_id"])]
            if _image_index(image, "subject") != subject:
                continue
            if _image_index(image, "frame_idx") % TEST_SAMPLING:
                continue
            sample = _make_sample(layout, image, annotation, cameras, joints, input_aspect)
        except _BadRecord as bad:
            where = joints_path if bad.in_joints else data_path
            raise DatasetError(f"{where}: image {annotation['image_id']}: {bad}") from None
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            ident = annotation.get("image_id") if isinstance(annotation, Mapping) else annotation
            raise DatasetError(
                f"{data_path}: annotation of image {ident} is incomplete or does not match "
                f"{camera_path.name} / {joints_path.name} (bad or missing {exc})"
            ) from None
        if bbox_root is not None:
            entry = bbox_root.get(sample.image_id)
            if entry is None:
                missing_roots.append(sample.image_id)
                continue
            sample = replace(sample, bbox=entry.bbox, root_cam=entry.root_cam)
        elif sample.bbox is None:
            dropped.append(sample.image_id)
            continue
        samples.append(sample)
    return samples, dropped, missing_roots


class _BadRecord(Exception):
    """A record that is complete but holds values no frame can have (named by the caller)."""

    def __init__(self, what: str, in_joints: bool = False) -> None:
        super().__init__(what)
        self.in_joints = in_joints


def whole_number(value: object) -> int:
    """A JSON id or index as an int: an integer, or a float that holds one (7.0). Anything else
    raises ValueError: int() would read "7" and truncate 7.5 to 7, taking one record for another."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{str(value)[:40]!r} is not a number")
    if isinstance(value, float) and not (math.isfinite(value) and value == math.floor(value)):
        raise ValueError(f"{value:.6g} is not a whole number")
    return int(value)


def _image_index(image: Mapping, name: str) -> int:
    """An images entry's id field (subject, frame_idx, cam_idx, ...) as a whole number."""
    try:
        return whole_number(image[name])
    except ValueError as bad:
        raise _BadRecord(f"{name} {bad}") from None


def _image_side(image: Mapping, name: str) -> int:
    value = image[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadRecord(f"{name} {str(value)[:40]!r} is not a number")
    # Compared as numbers, never converted first: int(nan) and float(10**400) raise.
    if not (1 <= value <= MAX_IMAGE_SIDE and value == round(value)):
        if isinstance(value, float):
            shown = f"{value:.6g}"
        else:
            shown = str(value) if value.bit_length() < 64 else "a huge integer"
        raise _BadRecord(f"{name} {shown} is not a whole number from 1 to {MAX_IMAGE_SIDE:,}")
    return int(value)


def _relative_file_name(value: object) -> str:
    """An annotation's image path: relative, inside the images folder, and a name the file system
    can hold; else the record is refused (a '..' or absolute path would be read from anywhere)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise _BadRecord(f"file_name {str(value)[:80]!r} is not a relative path")
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if value.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
        raise _BadRecord(f"file_name {value[:80]!r} leaves the images folder")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts) or len(value) > MAX_PATH_CHARS:
        raise _BadRecord(f"file_name {value[:80]!r}... is longer than a file system allows")
    return value


def _make_sample(layout, image, annotation, cameras, joints, input_aspect) -> Sample:
    """A Sample with the processed GT box (None when process_bbox rejects it) and GT root."""
    subject, frame = _image_index(image, "subject"), _image_index(image, "frame_idx")
    action, subaction = _image_index(image, "action_idx"), _image_index(image, "subaction_idx")
    camera_index = _image_index(image, "cam_idx")
    camera = cameras[camera_index]
    world = np.asarray(joints[str(action)][str(subaction)][str(frame)], dtype=np.float64)
    if world.shape != (17, 3):
        raise ValueError(f"3D joints of frame {frame}: shape {world.shape}, expected (17, 3)")
    if not np.isfinite(world).all() or np.abs(world).max() > MAX_WORLD_MM:
        raise _BadRecord(
            f"3D joints (action {action}, subaction {subaction}, frame {frame}) are not finite "
            f"numbers within {MAX_WORLD_MM:,.0f} mm of the world origin",
            in_joints=True,
        )
    joints_cam = world_to_camera(add_thorax(world), camera.rotation, camera.translation)
    width, height = _image_side(image, "width"), _image_side(image, "height")
    box = np.asarray(annotation["bbox"], dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise _BadRecord(f"bbox {_numbers(box.ravel())} is not 4 finite numbers")
    file_name = _relative_file_name(image["file_name"])
    return Sample(
        image_id=whole_number(image["id"]),
        file_name=file_name,
        image_path=layout.image_path(file_name, subject),
        subject=subject,
        action_index=action_index_from_file_name(file_name),
        subaction=subaction,
        camera_index=camera_index,
        frame_index=frame,
        image_size=(width, height),
        bbox=process_bbox(box, width, height, input_aspect),
        root_cam=tuple(float(v) for v in joints_cam[0]),  # type: ignore[arg-type]
        focal=camera.focal,
        center=camera.center,
        joints_cam=joints_cam,
    )


def spread_subset(count: int, limit: int | None) -> list[int]:
    """Indices of at most limit items spread evenly over count (all of them without a limit)."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit <= 0:
        return []
    # Spacing is >= 1 when limit < count, so the rounded indices are distinct.
    return np.linspace(0, count - 1, limit).round().astype(int).tolist()


def missing_images(samples: Sequence[Sample]) -> list[Path]:
    """The image paths of samples whose image file is not there, in test order."""
    return [s.image_path for s in samples if not s.image_path.is_file()]


def check_images(samples: Sequence[Sample], layout: Layout) -> None:
    """Raise one DatasetError naming the missing images (count, first five, layout assumed)."""
    missing = missing_images(samples)
    if missing:
        raise DatasetError(
            _missing_summary(missing, len(samples), layout),
            remedies=[
                ("images", "DIR if the images are elsewhere"),
                ("skip_missing", "to evaluate the frames whose images exist"),
            ],
        )


def _missing_summary(missing: Sequence[Path], total: int, layout: Layout) -> str:
    first = ", ".join(str(p) for p in missing[:5])
    return (
        f"{len(missing)} of {total} images are missing, assuming the {layout.describe()}; "
        f"first {min(5, len(missing))}: {first}"
    )


def load_dataset(
    root: str | Path,
    protocol: int = 2,
    *,
    images: str | Path | None = None,
    annotations: str | Path | None = None,
    bbox_root: str | Path | None = None,
    input_hw: tuple[int, int] = (256, 256),
    limit: int | None = None,
    require_images: bool = True,
    skip_missing: bool = False,
) -> H36MDataset:
    """Read the protocol's test frames (every 64th) under root, in the reference's test order.

    limit keeps that many frames spread evenly over the whole set (so every action shows up).
    A missing image is an error, unless skip_missing: then the frames without an image are left
    out (listed in ``skipped``) and limit spreads over the rest; none left is still an error.
    """
    if protocol not in PROTOCOL_SUBJECTS:
        raise DatasetError(f"protocol {protocol}: only 1 (S11, PA-MPJPE) and 2 (S9+S11, MPJPE)")
    layout = detect_layout(root, images, annotations)
    roots = load_bbox_root(bbox_root) if bbox_root is not None else None
    aspect = input_hw[1] / input_hw[0]
    samples: list[Sample] = []
    dropped: list[int] = []
    missing_roots: list[int] = []
    for subject in PROTOCOL_SUBJECTS[protocol]:
        subject_samples, subject_dropped, subject_missing = _subject_samples(
            layout, subject, aspect, roots
        )
        samples += subject_samples
        dropped += subject_dropped
        missing_roots += subject_missing
    if missing_roots:
        first = ", ".join(str(i) for i in missing_roots[:5])
        raise DatasetError(
            f"{bbox_root}: no entry for {len(missing_roots)} test frames of protocol {protocol} "
            f"(first image ids: {first}); is it the file for this protocol and these annotations?"
        )
    if not samples and dropped:
        first = ", ".join(str(i) for i in dropped[:5])
        raise DatasetError(
            f"{layout.annotations_dir}: the box of every one of the {len(dropped)} test frames "
            f"is empty or outside its image (zero width or height after clipping; first image "
            f"ids: {first})"
        )
    if not samples:
        raise DatasetError(
            f"{layout.annotations_dir}: no test frames (frame_idx % {TEST_SAMPLING} == 0) for "
            f"subjects {', '.join(map(str, PROTOCOL_SUBJECTS[protocol]))}"
        )
    skipped: list[Path] = []
    if skip_missing:
        skipped = missing_images(samples)
        if len(skipped) == len(samples):
            raise DatasetError(
                f"{_missing_summary(skipped, len(samples), layout)}; nothing to evaluate",
                remedies=[("images", "DIR if the images are elsewhere")],
            )
        absent = set(skipped)
        samples = [s for s in samples if s.image_path not in absent]
    selected = tuple(samples[i] for i in spread_subset(len(samples), limit))
    if require_images and not skip_missing:
        check_images(selected, layout)
    return H36MDataset(
        protocol=protocol,
        layout=layout,
        samples=selected,
        bbox_source=str(bbox_root) if bbox_root is not None else "ground truth",
        dropped=len(dropped),
        skipped=tuple(skipped),
    )
