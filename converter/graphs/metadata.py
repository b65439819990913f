"""What a consumer of our ONNX graphs needs to pre/post-process them, kept in ``metadata_props``.

Keys are flat and unprefixed (``variant``, ``depth_dim``, ``heatmap_height`` ...) so that
``session.get_modelmeta().custom_metadata_map`` reads naturally; lists are JSON, booleans are
``true``/``false``. The ``format`` key marks the set as ours: a graph without it has no
cnp-convert metadata and ``read_onnx_metadata`` returns None. The checkpoint's own provenance
(``CheckpointMetadata.to_strings()``) rides along under the ``checkpoint.`` prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import onnx

from converter.core.errors import OnnxModelError
from converter.core.variants import NORMALIZATION_NOTE, VariantSpec

ONNX_FORMAT = "cnp-onnx/1"
CHECKPOINT_PREFIX = "checkpoint."
INPUT_LAYOUT = "NCHW, RGB channel order, float32"
COORDINATE_UNITS = (
    "coords (N, J, 3) = (x, y, z): x in heatmap columns 0..W-1, y in heatmap rows 0..H-1, "
    "z in depth bins 0..D-1; patch pixels = x*input_width/W and y*input_height/H; "
    "root-relative depth in mm = (z/D*2-1) * bbox_3d_shape_mm[0]/2"
)
T = TypeVar("T")
HEATMAPS_LAYOUT = "heatmaps (N, J*D, H, W): raw logits, channel = joint*D + depth_bin"


@dataclass(frozen=True)
class OnnxMetadata:
    variant: str
    depth_dim: int
    heatmap_hw: tuple[int, int]
    joint_num: int
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    root_index: int
    input_name: str
    input_hw: tuple[int, int]
    input_layout: str
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    normalization: str
    bbox_3d_shape_mm: tuple[int, int, int]
    coordinate_units: str
    outputs: tuple[str, ...]
    batch: str  # "dynamic" or a fixed size, as text
    source_sha256: str  # empty for seeded random weights
    weights_sha256: str
    weights: str  # "trained" | "random"
    converter_version: str
    torch_version: str
    onnx_version: str
    opset: int
    exporter: str
    simplified: bool
    precision: str = "fp32"
    format: str = ONNX_FORMAT
    checkpoint: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def for_spec(cls, spec: VariantSpec, **export_facts: object) -> OnnxMetadata:
        """Spec-derived fields filled in; the export facts (sha256s, versions...) by keyword."""
        return cls(
            variant=spec.name,
            depth_dim=spec.depth_dim,
            heatmap_hw=spec.heatmap_hw,
            joint_num=spec.joint_num,
            joint_names=spec.joint_names,
            flip_pairs=spec.flip_pairs,
            root_index=spec.root_index,
            input_name="image",
            input_hw=spec.input_hw,
            input_layout=INPUT_LAYOUT,
            pixel_mean=spec.pixel_mean,
            pixel_std=spec.pixel_std,
            normalization=NORMALIZATION_NOTE,
            bbox_3d_shape_mm=spec.bbox_3d_shape_mm,
            coordinate_units=COORDINATE_UNITS,
            **export_facts,  # type: ignore[arg-type]
        )

    def to_props(self) -> dict[str, str]:
        props = {
            "format": self.format,
            "variant": self.variant,
            "depth_dim": str(self.depth_dim),
            "heatmap_height": str(self.heatmap_hw[0]),
            "heatmap_width": str(self.heatmap_hw[1]),
            "joint_num": str(self.joint_num),
            "joint_names": json.dumps(list(self.joint_names)),
            "flip_pairs": json.dumps([list(p) for p in self.flip_pairs]),
            "root_index": str(self.root_index),
            "input_name": self.input_name,
            "input_height": str(self.input_hw[0]),
            "input_width": str(self.input_hw[1]),
            "input_layout": self.input_layout,
            "pixel_mean": json.dumps(list(self.pixel_mean)),
            "pixel_std": json.dumps(list(self.pixel_std)),
            "normalization": self.normalization,
            "bbox_3d_shape_mm": json.dumps(list(self.bbox_3d_shape_mm)),
            "coordinate_units": self.coordinate_units,
            "outputs": json.dumps(list(self.outputs)),
            "batch": self.batch,
            "source_sha256": self.source_sha256,
            "weights_sha256": self.weights_sha256,
            "weights": self.weights,
            "converter_version": self.converter_version,
            "torch_version": self.torch_version,
            "onnx_version": self.onnx_version,
            "opset": str(self.opset),
            "exporter": self.exporter,
            "simplified": "true" if self.simplified else "false",
            "precision": self.precision,
        }
        if "heatmaps" in self.outputs:
            props["heatmaps_layout"] = HEATMAPS_LAYOUT
        props.update({CHECKPOINT_PREFIX + k: v for k, v in self.checkpoint.items()})
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> OnnxMetadata:
        """Parse our keys; a half-present or malformed set is an error naming the source."""
        try:
            return cls(
                format=props["format"],
                variant=props["variant"],
                depth_dim=int(props["depth_dim"]),
                heatmap_hw=(int(props["heatmap_height"]), int(props["heatmap_width"])),
                joint_num=int(props["joint_num"]),
                joint_names=tuple(json.loads(props["joint_names"])),
                flip_pairs=tuple((int(a), int(b)) for a, b in json.loads(props["flip_pairs"])),
                root_index=int(props["root_index"]),
                input_name=props["input_name"],
                input_hw=(int(props["input_height"]), int(props["input_width"])),
                input_layout=props["input_layout"],
                pixel_mean=_triple(props["pixel_mean"], float),
                pixel_std=_triple(props["pixel_std"], float),
                normalization=props["normalization"],
                bbox_3d_shape_mm=_triple(props["bbox_3d_shape_mm"], int),
                coordinate_units=props["coordinate_units"],
                outputs=tuple(json.loads(props["outputs"])),
                batch=props["batch"],
                source_sha256=props["source_sha256"],
                weights_sha256=props["weights_sha256"],
                weights=props["weights"],
                converter_version=props["converter_version"],
                torch_version=props["torch_version"],
                onnx_version=props["onnx_version"],
                opset=int(props["opset"]),
                exporter=props["exporter"],
                simplified=props["simplified"] == "true",
                precision=props["precision"],
                checkpoint={
                    k[len(CHECKPOINT_PREFIX) :]: v
                    for k, v in props.items()
                    if k.startswith(CHECKPOINT_PREFIX)
                },
            )
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)[:200]
            if isinstance(exc, RecursionError):
                reason = "a value nested too deeply"
            raise OnnxModelError(
                f"{source}: cnp-convert metadata is incomplete or malformed ({reason})"
            ) from None

    def to_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "depth_dim": self.depth_dim,
            "heatmap_hw": list(self.heatmap_hw),
            "outputs": list(self.outputs),
            "batch": self.batch,
            "weights": self.weights,
            "source_sha256": self.source_sha256,
            "weights_sha256": self.weights_sha256,
            "opset": self.opset,
            "exporter": self.exporter,
            "simplified": self.simplified,
            "precision": self.precision,
            "converter_version": self.converter_version,
            "torch_version": self.torch_version,
            "onnx_version": self.onnx_version,
        }


def _triple(text: str, cast: Callable[[object], T]) -> tuple[T, T, T]:
    values = json.loads(text)
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"expected a list of 3 values, got {text!r}")
    return (cast(values[0]), cast(values[1]), cast(values[2]))


def write_onnx_metadata(model: onnx.ModelProto, metadata: OnnxMetadata) -> onnx.ModelProto:
    """Replace our keys in model.metadata_props (other tools' keys are kept). Mutates model."""
    props = metadata.to_props()
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    # Drop stale checkpoint.* keys of an earlier write, too.
    kept = [(k, v) for k, v in kept if not k.startswith(CHECKPOINT_PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def load_onnx_model(path: str | Path, *, weights: bool = True) -> onnx.ModelProto:
    """onnx.load with one-line errors naming the file; rejects files that parse to no graph."""
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # protobuf DecodeError and friends
        raise OnnxModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from None
    # Arbitrary bytes (even an empty file) can parse as an empty ModelProto.
    if not model.graph.node or not model.graph.input or not model.opset_import:
        raise OnnxModelError(f"{path}: not an ONNX model (no graph, inputs or opset)")
    return model


def read_onnx_metadata(model_or_path: onnx.ModelProto | str | Path) -> OnnxMetadata | None:
    """Our metadata from a model or a file; None when the graph carries none of it."""
    if isinstance(model_or_path, onnx.ModelProto):
        model, source = model_or_path, "model"
    else:
        model, source = load_onnx_model(model_or_path, weights=False), str(model_or_path)
    props = {p.key: p.value for p in model.metadata_props}
    if not props.get("format", "").startswith("cnp-onnx/"):
        return None
    if props["format"] != ONNX_FORMAT:
        raise OnnxModelError(
            f"{source}: metadata format {props['format']!r} is not {ONNX_FORMAT!r} "
            "(written by another cnp-convert version)"
        )
    return OnnxMetadata.from_props(props, source)
