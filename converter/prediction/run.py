"""One ``predict`` run: options checked, images and boxes gathered, every crop through the graph,
then the pictures and the predictions file published (nothing is written before the graph ran
on every image, and nothing is half-written).

Where a box comes from, in order: ``box`` (one image), the boxes file (a JSON object: image file
name -> list of boxes, each ``[x, y, w, h]`` or ``{"box": [x, y, w, h], "root_depth_mm": Z}``),
else the whole image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import check_output_dir, make_output_dir, output_set
from ..core.errors import DatasetError, OptionError, UsageError
from ..core.progress import ProgressCallback
from ..core.variants import get_variant
from ..evaluation.visualize import png_bytes
from ..h36m.image_files import read_bgr
from ..runtimes.sessions import check_device, check_runtime
from ..runtimes.watched import check_time_limit
from .pictures import picture_2d, picture_3d
from .predictor import (
    MAX_CROPS_PER_RUN,
    Camera,
    PersonPose,
    PersonRequest,
    PosePredictor,
    check_root_depth,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_IMAGES = 1000  # per run; more is a job for the library API in a loop
MAX_PEOPLE_PER_IMAGE = 64
MAX_BOXES_FILE_BYTES = 1024 * 1024
PREDICTIONS_NAME = "predictions.json"


def _pair(values: tuple[float, ...] | None, option: str, positive: bool) -> None:
    if values is None:
        return
    if len(values) != 2 or not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        kind = "positive numbers" if positive else "finite numbers"
        raise OptionError(option, f"takes two {kind} (pixels), not {list(values)!r}")


@dataclass(frozen=True)
class PredictOptions:
    """What one predict run does; checked when made, before any file is read."""

    model: Path
    images: tuple[Path, ...]
    box: tuple[tuple[float, ...], ...] = ()  # person boxes x, y, w, h of the one image
    boxes: Path | None = None  # a JSON file of boxes per image file name
    root_depth: tuple[float, ...] = ()  # mm, one per box (or one for a whole image)
    focal: tuple[float, ...] | None = None  # fx, fy pixels; None: the official demo's 1500
    princpt: tuple[float, ...] | None = None  # cx, cy pixels; None: each image's centre
    variant: str | None = None
    runtime: str = "onnxruntime"
    device: str = "auto"
    ov_precision: str = "auto"
    threads: int | None = None
    output: Path | None = None
    force: bool = False
    timeout: float | None = None  # seconds per forward pass; None: the default for its batch
    camera: Camera = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", check_time_limit(self.timeout))
        if not self.images:
            raise OptionError("images", "none given: name image files or folders")
        if self.box and self.boxes is not None:
            raise OptionError("box", "and boxes both give boxes: use one")
        if self.box and (len(self.images) != 1 or self.images[0].is_dir()):
            raise OptionError("box", "applies to one image file; for several, use boxes FILE.json")
        if self.root_depth:
            if self.boxes is not None:
                raise OptionError("root_depth", "comes from the boxes file when it is given")
            wanted = len(self.box) or 1
            if len(self.root_depth) != wanted or (not self.box and len(self.images) != 1):
                raise OptionError(
                    "root_depth",
                    f"needs one value per box: {len(self.root_depth)} given for {wanted}",
                )
            for depth in self.root_depth:
                if not (depth > 0 and depth < float("inf")):
                    raise OptionError("root_depth", f"{depth}: a positive distance in mm")
        if self.threads is not None and self.threads < 1:
            raise OptionError("threads", f"{self.threads}: at least 1")
        if self.variant is not None:
            object.__setattr__(self, "variant", get_variant(self.variant).name)
        object.__setattr__(self, "device", check_device(self.device))
        runtime = check_runtime(self.runtime, self.ov_precision, self.device)
        object.__setattr__(self, "runtime", runtime)
        _pair(self.focal, "focal", positive=True)
        _pair(self.princpt, "princpt", positive=False)
        focal = (self.focal[0], self.focal[1]) if self.focal else Camera().focal
        principal = (self.princpt[0], self.princpt[1]) if self.princpt else None
        camera = Camera(focal, principal)
        object.__setattr__(self, "camera", camera)


@dataclass(frozen=True)
class ImagePrediction:
    path: Path
    width: int
    height: int
    people: tuple[PersonPose, ...]
    box_source: str  # "given", "boxes file" or "whole image"
    pictures: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "image": str(self.path),
            "width": self.width,
            "height": self.height,
            "boxes_from": self.box_source,
            "people": [p.to_dict() for p in self.people],
            "pictures": [str(p) for p in self.pictures],
        }


@dataclass(frozen=True)
class PredictReport:
    model: Path
    variant: str
    weights: str  # the graph metadata's "trained" / "random", or "unknown"
    runtime: str
    device: str
    camera: Camera
    joint_names: tuple[str, ...]
    images: tuple[ImagePrediction, ...]
    predictions_file: Path | None
    notes: tuple[str, ...] = ()

    @property
    def people(self) -> int:
        return sum(len(i.people) for i in self.images)

    def to_dict(self) -> dict[str, object]:
        return {
            "model": str(self.model),
            "variant": self.variant,
            "weights": self.weights,
            "runtime": self.runtime,
            "device": self.device,
            "focal_px": list(self.camera.focal),
            "princpt_px": list(self.camera.principal) if self.camera.principal else "image centre",
            "joint_names": list(self.joint_names),
            "units": {
                "joints_2d_px": "pixels of the image as stored (EXIF orientation not applied)",
                "joints_3d_mm": "camera mm (x right, y down, z away) when the person has a "
                "root depth, else root-relative mm",
            },
            "images": [i.to_dict() for i in self.images],
            "predictions_file": str(self.predictions_file) if self.predictions_file else None,
            "notes": list(self.notes),
        }


def gather_images(paths: tuple[Path, ...]) -> list[Path]:
    """Image files as given, and a folder's image files (not its sub-folders) in name order;
    a link in a folder that leads outside it is refused."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = path.resolve()
            try:
                entries = sorted(path.iterdir())
            except OSError as exc:
                raise DatasetError(f"{path}: cannot be listed ({exc.strerror})") from None
            chosen = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            for entry in chosen:
                if inside not in entry.resolve().parents:
                    raise DatasetError(f"{entry}: a link to outside {path}")
            if not chosen:
                raise DatasetError(f"{path}: holds no {', '.join(IMAGE_SUFFIXES)} files")
            found.extend(chosen)
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetError(f"{path}: no such file or folder")
        if len(found) > MAX_IMAGES:
            raise DatasetError(f"{path}: more than {MAX_IMAGES} images in one run")
    return found


def _request(entry: object, where: str) -> PersonRequest:
    if isinstance(entry, dict):
        unknown = set(entry) - {"box", "root_depth_mm"}
        if unknown or "box" not in entry:
            raise DatasetError(f"{where}: an entry is {{'box': [x, y, w, h], 'root_depth_mm': Z}}")
        box, depth = entry["box"], entry.get("root_depth_mm")
    else:
        box, depth = entry, None
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise DatasetError(f"{where}: a box is a list of four numbers [x, y, w, h]")
    if depth is not None:
        if not isinstance(depth, int | float) or isinstance(depth, bool):
            raise DatasetError(f"{where}: root_depth_mm is a number of mm")
        try:
            depth = check_root_depth(depth, where)
        except UsageError as exc:
            raise DatasetError(exc.message) from None
    return PersonRequest(tuple(float(v) for v in box), depth)  # type: ignore[arg-type]


def read_boxes_file(path: Path) -> dict[str, list[PersonRequest]]:
    """image file name -> its people, from a bounded JSON file (see the module's docstring)."""
    try:
        size = path.stat().st_size
        if size > MAX_BOXES_FILE_BYTES:
            raise DatasetError(f"{path}: {size} bytes, over the {MAX_BOXES_FILE_BYTES} read")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from None
    except RecursionError:
        raise DatasetError(f"{path}: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DatasetError(f"{path}: not JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of image name -> list of boxes")
    people: dict[str, list[PersonRequest]] = {}
    for name, entries in data.items():
        where = f"{path}: {name[:80]!r}"
        if not isinstance(entries, list) or not entries:
            raise DatasetError(f"{where}: expected a non-empty list of boxes")
        if len(entries) > MAX_PEOPLE_PER_IMAGE:
            raise DatasetError(f"{where}: more than {MAX_PEOPLE_PER_IMAGE} boxes")
        people[name] = [_request(entry, where) for entry in entries]
    return people


def _picture_names(images: list[Path]) -> list[str]:
    """A file stem per image, unique within the run (a second a.jpg from another folder: a-2)."""
    names: list[str] = []
    taken: set[str] = set()
    for path in images:
        stem, count = path.stem, 1
        name = stem
        while name in taken:
            count += 1
            name = f"{stem}-{count}"
        taken.add(name)
        names.append(name)
    return names


def _requests_for(
    options: PredictOptions, images: list[Path]
) -> tuple[list[tuple[list[PersonRequest], str]], list[str]]:
    notes: list[str] = []
    if options.box:
        depths = options.root_depth or (None,) * len(options.box)
        people = [PersonRequest(tuple(b), d) for b, d in zip(options.box, depths, strict=True)]  # type: ignore[arg-type]
        return [(people, "given")], notes
    if options.boxes is None:
        depth = options.root_depth[0] if options.root_depth else None
        return [([PersonRequest(None, depth)], "whole image") for _ in images], notes
    table = read_boxes_file(options.boxes)
    by_name = {path.name for path in images}
    unknown = sorted(set(table) - by_name - {str(p) for p in images})
    if unknown:
        raise DatasetError(
            f"{options.boxes}: boxes for {unknown[0][:80]!r}, which is not an image of this run"
        )
    chosen = []
    for path in images:
        people = table.get(str(path), table.get(path.name))
        if people is None:
            notes.append(f"{path}: not in {options.boxes}; the whole image is the box")
            chosen.append(([PersonRequest()], "whole image"))
        else:
            chosen.append((people, "boxes file"))
    return chosen, notes


def run_prediction(
    options: PredictOptions, progress: ProgressCallback | None = None
) -> PredictReport:
    """Open the graph, predict every person of every image, publish the pictures and JSON."""
    images = gather_images(options.images)
    requests, notes = _requests_for(options, images)
    names = _picture_names(images)
    if options.output is not None:
        inputs = tuple(p for p in options.images if p.is_dir())
        outputs = (PREDICTIONS_NAME, *(f"{n}_{kind}.png" for n in names for kind in ("2d", "3d")))
        check_output_dir(options.output, inputs, options.force, outputs)
    predictor = PosePredictor(
        options.model,
        runtime=options.runtime,
        device=options.device,
        variant=options.variant,
        threads=options.threads,
        ov_precision=options.ov_precision,
        time_limit_s=options.timeout,
    )
    spec = predictor.spec
    found: list[tuple[Path, int, int, tuple[PersonPose, ...], str, bytes, bytes]] = []
    group: list[tuple[Path, object, list[PersonRequest], str]] = []

    def flush() -> None:
        poses = predictor.predict_many(
            [(image, people, str(path)) for path, image, people, _ in group],  # type: ignore[misc]
            options.camera,
        )
        for (path, image, _, source), people in zip(group, poses, strict=True):
            height, width = image.shape[:2]  # type: ignore[attr-defined]
            pictures = (b"", b"")
            if options.output is not None:
                pictures = (
                    png_bytes(picture_2d(image, people, spec)),  # type: ignore[arg-type]
                    png_bytes(picture_3d(people, spec)),
                )
            found.append((path, width, height, people, source, *pictures))
            if progress is not None:
                progress("predict", len(found), len(images))
        group.clear()

    crops = 0
    for path, (people, source) in zip(images, requests, strict=True):
        image = read_bgr(path)
        if crops + len(people) > MAX_CROPS_PER_RUN and group:
            flush()
            crops = 0
        group.append((path, image, people, source))
        crops += len(people)
    if group:
        flush()

    directory = make_output_dir(options.output) if options.output is not None else None
    results = []
    pictures: list[tuple[Path, bytes]] = []
    for (path, width, height, people, source, flat, deep), name in zip(found, names, strict=True):
        written: tuple[Path, ...] = ()
        if directory is not None:
            written = (directory / f"{name}_2d.png", directory / f"{name}_3d.png")
            pictures += zip(written, (flat, deep), strict=True)
        results.append(ImagePrediction(path, width, height, people, source, written))
    predictions_file = directory / PREDICTIONS_NAME if directory is not None else None
    if not all(person.camera_space for image in results for person in image.people):
        notes.append(
            "people without a root depth have root-relative 3D joints (mm, the root at 0); "
            "give root depths (RootNet's, or measured) for camera-frame positions"
        )
    metadata = predictor.metadata
    report = PredictReport(
        model=options.model,
        variant=spec.name,
        weights=metadata.weights if metadata is not None else "unknown",
        runtime=options.runtime,
        device=predictor.session.device,
        camera=options.camera,
        joint_names=spec.joint_names,
        images=tuple(results),
        predictions_file=predictions_file,
        notes=tuple(notes),
    )
    if predictions_file is not None:
        # The pictures and the JSON that lists them are published together, or none of them.
        text = json.dumps(report.to_dict(), indent=1) + "\n"
        with output_set(overwrite=options.force) as outputs:
            for out, content in [*pictures, (predictions_file, text.encode())]:
                outputs.write(out, content)
    return report
