"""Cheaper graphs than fp32: half precision built in PyTorch, int8 by onnxruntime quantization.

Both keep the soft-argmax (softmax over D·H·W bins and the expectations) in fp32 and the graph's
input and outputs float32, so a consumer swaps files without touching its code.

fp16: the network is cast in PyTorch and exported as is (onnxconverter-common's float16 pass
fails on some graphs, with type errors on Cast/Resize). Every foldable BatchNorm is folded first
(the stem BN's running variance, fed by un-divided 0..255 input, overflows fp16), the stem conv
stays fp32 (the input spans about -2..1130, too wide for fp16 steps), the rest runs in half and
the heatmaps are cast back to fp32 before the soft-argmax.

int8: onnxruntime's static quantization of the fp32 graph (QDQ, uint8 activations, per-channel
int8 weights, measured fastest on CPU), calibrated on crops made by the real preprocessing: by
default augmented crops of the shipped real photos, else a Human3.6M tree or a plain images
directory. The soft-argmax nodes stay fp32, and so do the high-resolution layers (the stem, the
first two stages with their downsampling layers and the first block of the third stage). On the
released XS the stem, the first stage and the second downsampling layer each alone in int8 move
joints more than every later layer together; the next blocks alone give the worst single joints
(sensitivity sweep: benchmarks/precision_sweep.py, docs/precision_and_speed.md). The final conv
is quantized like the others.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..core.choices import DEFAULT_CALIBRATION_COUNT
from ..core.errors import DatasetError, OnnxModelError, UsageError, first_line
from ..core.model import ConvNeXtPose
from ..core.progress import ProgressCallback, progress_callback
from ..core.variants import VariantSpec
from .fold import fold_batchnorms

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

CALIBRATION_STAGE = "int8 calibration (images)"


# ---------------------------------------------------------------------------------------------
# fp16


class _Fp32Stem(nn.Module):
    """The stem conv in fp32 on the fp32 image; hands a half tensor to the rest."""

    def __init__(self, stem: nn.Module) -> None:
        super().__init__()
        self.stem = stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x).half()


class HalfPrecisionPose(nn.Module):
    """fp32 image -> fp16 backbone and head -> fp32 soft-argmax (and heatmaps, if asked)."""

    def __init__(self, model: ConvNeXtPose, heatmaps: bool = False) -> None:
        super().__init__()
        folded, self.fold_report = fold_batchnorms(model)
        stem = copy.deepcopy(folded.backbone.downsample_layers[0]).float()
        self.backbone = folded.backbone.half()
        self.backbone.downsample_layers[0] = _Fp32Stem(stem)
        self.head = folded.head.half()
        self.soft_argmax = folded.soft_argmax  # index buffers stay fp32
        self.with_heatmaps = heatmaps

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        heatmaps = self.head(self.backbone(image)).float()
        coords = self.soft_argmax(heatmaps)
        return (coords, heatmaps) if self.with_heatmaps else coords


# ---------------------------------------------------------------------------------------------
# Calibration images


@dataclass(frozen=True)
class CalibrationSet:
    images: np.ndarray  # (N, 3, H, W) float32, normalized network input
    source: str  # what they were cropped from, for the report and the metadata

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _spread(count: int, limit: int) -> list[int]:
    """limit indices spread evenly over range(count) (all of them when limit >= count)."""
    if limit >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


def _human36m_crops(root: Path, spec: VariantSpec, count: int) -> np.ndarray:
    from ..h36m.dataset import load_dataset
    from ..h36m.preprocess import load_input

    dataset = load_dataset(root, 2, input_hw=spec.input_hw, limit=count)
    return np.stack([load_input(s.image_path, s.bbox, spec) for s in dataset.samples])


def _directory_crops(directory: Path, spec: VariantSpec, count: int) -> np.ndarray:
    """Whole images as boxes (aspect fixed and enlarged as the reference does for a person box)."""
    from ..h36m.preprocess import crop_patch, normalize_patch, process_bbox, read_bgr

    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DatasetError(
            f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)}) and no Human3.6M annotations "
            "to calibrate on"
        )
    aspect = spec.input_hw[1] / spec.input_hw[0]
    crops = []
    for index in _spread(len(files), count):
        image = read_bgr(files[index])
        height, width = image.shape[:2]
        box = process_bbox((0, 0, width, height), width, height, aspect)
        if box is None:
            raise DatasetError(f"{files[index]}: image of size {width}x{height} cannot be cropped")
        crops.append(normalize_patch(crop_patch(image, box, spec.input_hw), spec))
    return np.stack(crops)


def calibration_set(
    spec: VariantSpec, source: str | Path | None = None, count: int = DEFAULT_CALIBRATION_COUNT
) -> CalibrationSet:
    """Network inputs to calibrate int8 on, cropped by the evaluation's own preprocessing.

    source: a Human3.6M root (its protocol-2 test boxes), a directory of images (whole images,
    searched recursively), or None for augmented crops of the shipped real photos.
    """
    from ..h36m.dataset import find_annotations_dir

    if count < 1:
        raise UsageError(f"the calibration count must be at least 1, not {count}")
    if source is None:
        return calibration_set_from_photos(spec, count)
    root = Path(source)
    if not root.is_dir():
        raise DatasetError(f"{root}: the calibration source is not a directory")
    if find_annotations_dir(root) is not None:
        images = _human36m_crops(root, spec, count)
        label = f"Human3.6M test crops under {root}, {len(images)} frames"
    else:
        images = _directory_crops(root, spec, count)
        label = f"images under {root}, {len(images)} whole-image crops"
    return CalibrationSet(images.astype(np.float32), label)


PHOTO_CALIBRATION_SEED = 8  # a draw of its own: never the verdict's fixed photo crops


def calibration_set_from_photos(
    spec: VariantSpec, count: int = DEFAULT_CALIBRATION_COUNT
) -> CalibrationSet:
    """Augmented crops of the shipped real photos (converter.h36m.photos), count of them."""
    from ..h36m.photos import PHOTO_NAMES, random_photo_inputs

    if count < 1:
        raise UsageError(f"the calibration count must be at least 1, not {count}")
    images = random_photo_inputs(spec, count, PHOTO_CALIBRATION_SEED)
    label = f"{count} augmented crops of the {len(PHOTO_NAMES)} shipped photos"
    return CalibrationSet(images.astype(np.float32), label)


# ---------------------------------------------------------------------------------------------
# int8


@dataclass(frozen=True)
class QuantizationFacts:
    quant_format: str
    activation_type: str
    weight_type: str
    per_channel: bool
    calibrate_method: str
    calibration: str
    calibration_images: int
    excluded_nodes: tuple[str, ...]  # the soft-argmax, kept in fp32

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.quant_format,
            "activations": self.activation_type,
            "weights": self.weight_type,
            "per_channel": self.per_channel,
            "calibrate_method": self.calibrate_method,
            "calibration": self.calibration,
            "calibration_images": self.calibration_images,
            "excluded_nodes": list(self.excluded_nodes),
        }


def float_kept_nodes(model: onnx.ModelProto, spec: VariantSpec) -> list[str]:
    """The nodes before the second block of the third stage: the stem, stages 1-2 with their
    downsampling layers and block 3.1, found by counting Conv nodes (names differ by exporter).

    Convs per part, BatchNorms folded: stem 1, a block 3, a downsampling layer 1."""
    first_quantized = 1 + 3 * spec.depths[0] + 1 + 3 * spec.depths[1] + 1 + 3
    names, convs = [], 0
    for node in model.graph.node:  # topologically sorted
        if node.op_type == "Conv":
            if convs == first_quantized:
                return names
            convs += 1
        names.append(node.name)
    raise OnnxModelError(f"the graph has {convs} Conv nodes; expected more than {first_quantized}")


def soft_argmax_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes fed, directly or not, by the last Conv (the heatmap logits).

    That is the soft-argmax: reshape, softmax, marginal sums and expectations.
    """
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if not convs:
        raise OnnxModelError("the graph has no Conv node; cannot find the heatmap logits")
    reached = set(convs[-1].output)
    names = []
    for node in model.graph.node:  # ONNX nodes are topologically sorted
        if any(name in reached for name in node.input):
            names.append(node.name)
            reached.update(node.output)
    ops = {n.op_type for n in model.graph.node if n.name in names}
    if "Softmax" not in ops:
        raise OnnxModelError("no Softmax after the last Conv; this is not a soft-argmax graph")
    return names


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array, one image per call."""

    def __init__(
        self, input_name: str, images: np.ndarray, progress: ProgressCallback | None = None
    ) -> None:
        self._items = iter([{input_name: images[i : i + 1]} for i in range(len(images))])
        self._count, self._given = len(images), 0
        self._progress = progress_callback(progress)

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        if item is not None:  # the previous image has been run by the calibrator
            self._progress(CALIBRATION_STAGE, self._given, self._count)
            self._given += 1
        else:
            self._progress(CALIBRATION_STAGE, self._count, self._count)
        return item

    def rewind(self) -> None:  # not needed by MinMax; part of the protocol
        pass


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer prints progress to stdout and warns through logging; keep --json clean."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def quantize_int8(
    model: onnx.ModelProto,
    calibration: CalibrationSet,
    spec: VariantSpec,
    *,
    quant_format: str = "QDQ",
    per_channel: bool = True,
    calibrate_method: str = "MinMax",
    keep_float: tuple[str, ...] | None = None,
    only: tuple[str, ...] | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[onnx.ModelProto, QuantizationFacts]:
    """The fp32 graph statically quantized; the soft-argmax and keep_float nodes stay fp32.

    keep_float: further node names left in fp32; None is the recipe (float_kept_nodes), () keeps
    only the soft-argmax. only: quantize just these nodes (a sensitivity sweep's
    one-block-at-a-time runs).
    progress: called as progress(CALIBRATION_STAGE, images run, images) during calibration."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if keep_float is None:
        keep_float = tuple(float_kept_nodes(model, spec))
    excluded = [*soft_argmax_nodes(model), *keep_float]
    input_name = model.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="cnp-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(source))
        try:
            with _quiet_quantizer():
                quantize_static(
                    str(source),
                    str(target),
                    _Reader(input_name, calibration.images, progress),
                    quant_format=QuantFormat[quant_format],
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=excluded,
                    nodes_to_quantize=list(only) if only is not None else None,
                    calibrate_method=CalibrationMethod[calibrate_method],
                )
        except Exception as exc:  # the quantizer raises anything from onnx to numpy errors
            first = first_line(exc)
            raise OnnxModelError(f"int8 quantization failed ({first[:300]})") from None
        quantized = onnx.load(str(target))
    _match_scale_and_zero_point_shapes(quantized)
    facts = QuantizationFacts(
        quant_format=quant_format,
        activation_type="uint8",
        weight_type="int8",
        per_channel=per_channel,
        calibrate_method=calibrate_method,
        calibration=calibration.source,
        calibration_images=len(calibration),
        excluded_nodes=tuple(excluded),
    )
    return quantized, facts


def _match_scale_and_zero_point_shapes(model: onnx.ModelProto) -> int:
    """Per-tensor Q/DQ nodes whose scale is (1,) but zero point a scalar get a scalar scale.

    onnxruntime's quantizer writes the bias of a lone BatchNormalization that way; ONNX and
    onnxruntime accept it, OpenCV's DNN engine asserts that the two shapes are equal. The values
    are unchanged (a reshape of a one-element initializer). Returns how many were reshaped.
    """
    initializers = {t.name: t for t in model.graph.initializer}
    qdq = ("QuantizeLinear", "DequantizeLinear")
    fits: dict[str, bool] = {}  # scale name -> every use is a Q/DQ scale with a scalar zero point
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name not in initializers:
                continue
            zero = initializers.get(node.input[2]) if len(node.input) > 2 else None
            fit = node.op_type in qdq and position == 1 and zero is not None and not zero.dims
            fits[name] = fits.get(name, True) and fit
    reshaped = 0
    for name, fit in fits.items():
        scale = initializers[name]
        if fit and list(scale.dims) == [1]:
            value = numpy_helper.to_array(scale).reshape(())
            scale.CopyFrom(numpy_helper.from_array(value, name))
            reshaped += 1
    return reshaped


def softmax_input_types(model: onnx.ModelProto) -> list[int]:
    """Element types (onnx.TensorProto enums) of every Softmax input, after shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    return [types.get(n.input[0], 0) for n in graph.node if n.op_type == "Softmax"]
