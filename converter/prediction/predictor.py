"""A verified graph on people's pictures: boxes -> crops -> the graph -> joints in pixels and mm.

Each step is the reference's (the official demo's): a person box is given the network's aspect
ratio and enlarged 1.25x (h36m.preprocess.process_bbox), the crop is the reference affine warp and
the one normalization (h36m.preprocess), and the graph's coords go back to image pixels through
the box (the inverse of that unrotated warp). Depth follows the reference: z in heatmap units
spans the 2000 mm 3D box around the root, and a root depth in camera mm (RootNet's, in the
official demo) places it; pixels become camera mm with the pinhole model.

Without a root depth the 3D pose is root-relative: the root is put at the depth where the
processed box spans the reference's 2000 mm (what the network was trained to assume), so x and y
come out in the same millimetres as z, and the root is then moved to 0. A whole image with no
box is one crop of the whole frame (its aspect fixed, not enlarged: the picture is the crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DatasetError, OnnxModelError, UsageError
from ..core.variants import VariantSpec, get_variant
from ..evaluation.evaluate import OnnxBackend
from ..evaluation.visualize import heatmap_to_pixels
from ..graphs.facts import graph_facts, variant_disagreements
from ..graphs.metadata import load_onnx_model, read_onnx_metadata
from ..h36m.image_files import read_bgr
from ..h36m.metrics import back_project
from ..h36m.preprocess import crop_patch, normalize_patch, process_bbox
from ..runtimes.sessions import Session, open_session
from ..verdicts.verify import check_variant_option

DEFAULT_FOCAL_PX = (1500.0, 1500.0)  # the official demo's "normalized" camera
MAX_CROPS_PER_RUN = 32  # crops per inference call: bounds memory at any batch of people
MAX_BOX_SIDE_RATIO = 64.0  # a box more than 64x its image's size is a typo, not a person


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels; principal None: the image centre (as the official demo)."""

    focal: tuple[float, float] = DEFAULT_FOCAL_PX
    principal: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name, pair in (("focal", self.focal), ("principal", self.principal)):
            if pair is None:
                continue
            if len(pair) != 2 or not all(np.isfinite(v) for v in pair):
                raise UsageError(f"{name} must be two finite numbers, not {pair!r}")
        if not all(v > 0 for v in self.focal):
            raise UsageError(f"focal lengths must be positive, not {self.focal!r}")

    def principal_for(self, width: int, height: int) -> tuple[float, float]:
        return self.principal if self.principal is not None else (width / 2.0, height / 2.0)


@dataclass(frozen=True)
class PersonPose:
    """One person's pose in one picture.

    box: as given (None: the whole image); crop_box: the box the network saw (x, y, w, h);
    joints_2d: (J, 2) image pixels; joints_3d: (J, 3) mm, in the camera frame when root_depth_mm
    was given (camera_space), else root-relative; coords: (J, 3) the graph's heatmap units.
    """

    box: tuple[float, float, float, float] | None
    crop_box: tuple[float, float, float, float]
    joints_2d: np.ndarray
    joints_3d: np.ndarray
    coords: np.ndarray
    root_depth_mm: float | None
    camera_space: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "box": list(self.box) if self.box is not None else None,
            "crop_box": [round(v, 3) for v in self.crop_box],
            "root_depth_mm": self.root_depth_mm,
            "space": "camera" if self.camera_space else "root-relative",
            "joints_2d_px": np.round(self.joints_2d, 3).tolist(),
            "joints_3d_mm": np.round(self.joints_3d, 2).tolist(),
        }


@dataclass(frozen=True)
class PersonRequest:
    """What to predict for one person: a box (None: the whole image) and its root depth."""

    box: tuple[float, float, float, float] | None = None
    root_depth_mm: float | None = None


def check_box(box: Sequence[float], width: int, height: int, source: str) -> tuple[float, ...]:
    """A person box (x, y, w, h) that a crop can be made of, or a UsageError naming source."""
    values = tuple(float(v) for v in box)
    if len(values) != 4 or not all(np.isfinite(v) for v in values):
        raise UsageError(f"{source}: a box is four finite numbers x,y,w,h, not {list(box)!r}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise UsageError(f"{source}: box {list(values)} has no area (width and height > 0)")
    if max(w / width, h / height) > MAX_BOX_SIDE_RATIO:
        raise UsageError(
            f"{source}: box {list(values)} is far larger than the {width}x{height} image"
        )
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise UsageError(f"{source}: box {list(values)} lies outside the {width}x{height} image")
    return values


def check_root_depth(depth: float, source: str) -> float:
    depth = float(depth)
    if not np.isfinite(depth) or depth <= 0:
        raise UsageError(f"{source}: a root depth is a positive distance in mm, not {depth!r}")
    return depth


def crop_box_for(
    request: PersonRequest, width: int, height: int, spec: VariantSpec, source: str
) -> tuple[float, float, float, float]:
    """The box the network sees: the reference's processed box, or the whole image squared."""
    out_h, out_w = spec.input_hw
    aspect = out_w / out_h
    if request.box is None:
        w, h = float(width), float(height)
        if w > aspect * h:
            h = w / aspect
        else:
            w = h * aspect
        return (width / 2.0 - w / 2.0, height / 2.0 - h / 2.0, w, h)
    processed = process_bbox(check_box(request.box, width, height, source), width, height, aspect)
    if processed is None:
        raise UsageError(f"{source}: box {list(request.box)} has no area inside the image")
    return processed


def assumed_root_depth(crop_box: Sequence[float], camera: Camera, spec: VariantSpec) -> float:
    """The depth at which the crop box spans the reference's 3D box (2000 mm)."""
    return spec.bbox_3d_shape_mm[2] * camera.focal[0] / float(crop_box[2])


class PosePredictor:
    """A ConvNeXtPose graph, ready to find people's joints in pictures.

    The graph's cnp-convert metadata gives the variant (and so the input size, heatmap size and
    depth bins); a graph without it needs variant. A variant that contradicts the graph is
    refused before any image is read.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        runtime: str = "onnxruntime",
        device: str = "auto",
        variant: str | None = None,
        threads: int | None = None,
        ov_precision: str = "auto",
        time_limit_s: float | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        proto = load_onnx_model(self.model_path, weights=False)
        metadata = read_onnx_metadata(proto)
        check_variant_option(self.model_path, metadata, variant)
        if metadata is None and variant is None:
            raise OnnxModelError(
                f"{self.model_path}: has no cnp-convert metadata to say its variant",
                remedies=[("variant", "V")],
            )
        self.spec: VariantSpec = get_variant(metadata.variant if metadata else str(variant))
        self.metadata = metadata
        facts = graph_facts(proto)
        problems = variant_disagreements(facts, self.spec)
        if problems:
            raise OnnxModelError(
                f"{self.model_path}: does not fit ConvNeXtPose-{self.spec.name}: "
                + "; ".join(problems)
            )
        del proto  # the session reads the file itself; a second copy of the weights is waste
        self.session: Session = open_session(
            self.model_path, runtime, device, threads, ov_precision=ov_precision,
            time_limit_s=time_limit_s,
        )  # fmt: skip
        # The backend eval scores with: a fixed-batch graph gets padded batches of its size, and
        # every run's coords are checked (shape, NaN) before they are used.
        self._backend = OnnxBackend(self.session)

    @property
    def fixed_batch(self) -> int | None:
        """The graph's fixed batch size, or None for a dynamic batch."""
        return self._backend.fixed_batch

    def _run(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) -> (N, J, 3) coords, in calls of at most MAX_CROPS_PER_RUN crops."""
        found = []
        for start in range(0, len(images), MAX_CROPS_PER_RUN):
            coords = self._backend(images[start : start + MAX_CROPS_PER_RUN])
            if coords.shape[1] != self.spec.joint_num:
                raise OnnxModelError(
                    f"{self.model_path}: 'coords' has {coords.shape[1]} joints, "
                    f"ConvNeXtPose-{self.spec.name} has {self.spec.joint_num}"
                )
            found.append(coords.astype(np.float64))
        return np.concatenate(found) if found else np.zeros((0, self.spec.joint_num, 3))

    def predict_many(
        self,
        pictures: Sequence[tuple[np.ndarray, Sequence[PersonRequest], str]],
        camera: Camera = Camera(),
    ) -> list[tuple[PersonPose, ...]]:
        """Every person of every picture (BGR image, requests, a name for messages), the crops
        of all of them run together; one tuple of poses per picture, in request order."""
        spec = self.spec
        boxes: list[tuple[float, float, float, float]] = []
        crops = []
        for image, requests, source in pictures:
            height, width = image.shape[:2]
            for request in requests:
                box = crop_box_for(request, width, height, spec, source)
                boxes.append(box)
                crops.append(normalize_patch(crop_patch(image, box, spec.input_hw), spec))
        if not crops:
            return [() for _ in pictures]
        coords = self._run(np.stack(crops))
        results: list[tuple[PersonPose, ...]] = []
        index = 0
        for image, requests, _ in pictures:
            height, width = image.shape[:2]
            principal = camera.principal_for(width, height)
            poses = []
            for request in requests:
                poses.append(self._pose(request, boxes[index], coords[index], camera, principal))
                index += 1
            results.append(tuple(poses))
        return results

    def predict(
        self,
        image_bgr: np.ndarray | str | Path,
        boxes: Sequence[Sequence[float]] | None = None,
        root_depths: Sequence[float] | None = None,
        camera: Camera = Camera(),
        source: str = "image",
    ) -> tuple[PersonPose, ...]:
        """The people in one BGR image (or image file): one pose per box (no boxes: the whole
        image), each root depth (mm) placing its person in the camera frame."""
        if isinstance(image_bgr, str | Path):
            source = str(image_bgr)
            image_bgr = read_bgr(image_bgr)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise DatasetError(f"{source}: expected an (H, W, 3) uint8 BGR image")
        chosen: list[Sequence[float] | None] = list(boxes) if boxes else [None]
        if root_depths is not None and len(root_depths) != len(chosen):
            raise UsageError(f"{source}: {len(root_depths)} root depths for {len(chosen)} people")
        requests = [
            PersonRequest(
                tuple(float(v) for v in box) if box is not None else None,  # type: ignore[arg-type]
                check_root_depth(root_depths[k], source) if root_depths is not None else None,
            )
            for k, box in enumerate(chosen)
        ]
        return self.predict_many([(image_bgr, requests, source)], camera)[0]

    def _pose(
        self,
        request: PersonRequest,
        crop_box: tuple[float, float, float, float],
        coords: np.ndarray,
        camera: Camera,
        principal: tuple[float, float],
    ) -> PersonPose:
        spec = self.spec
        camera_space = request.root_depth_mm is not None
        depth = (
            request.root_depth_mm if camera_space else assumed_root_depth(crop_box, camera, spec)
        )
        # Through the box (x / W * w + x0): for the unrotated reference crop this is the inverse
        # of its warp, and the formula eval draws and scores with (back_project below).
        joints_2d = heatmap_to_pixels(coords, crop_box, spec)
        joints_3d = back_project(
            coords[None],
            np.array([crop_box]),
            np.array([depth]),
            np.array([camera.focal]),
            np.array([principal]),
            spec.heatmap_hw,
            spec.depth_dim,
            float(spec.bbox_3d_shape_mm[2]),
        )[0]
        if not camera_space:
            joints_3d = joints_3d - joints_3d[spec.root_index]
        return PersonPose(
            box=request.box,
            crop_box=crop_box,
            joints_2d=joints_2d,
            joints_3d=joints_3d,
            coords=coords,
            root_depth_mm=request.root_depth_mm,
            camera_space=camera_space,
        )
