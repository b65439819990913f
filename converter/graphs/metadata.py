"""What a consumer of our ONNX graphs needs to pre/post-process them, kept in ``metadata_props``.

Keys are flat and unprefixed (``variant``, ``depth_dim``, ``heatmap_height`` ...) so that
``session.get_modelmeta().custom_metadata_map`` reads naturally, and every value is JSON
(``json.loads`` each one: numbers, ``true``/``false``, quoted strings, lists, one object). The
``format`` key marks the set as ours: a graph without it has no cnp-convert metadata and
``read_onnx_metadata`` returns None. The checkpoint's own provenance rides along as one JSON
object under ``checkpoint``, without the facts already at the top level. The graph's
``producer_name`` is cnp-convert, ``producer_version`` its version and ``model_version`` the
metadata schema (2).

Graphs written before (format ``cnp-onnx/1``: bare strings, comma lists under ``checkpoint.*``)
are still read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import onnx

from ..core.errors import OnnxModelError
from ..core.graph_text import check_graph_text
from ..core.variants import NORMALIZATION_NOTE, VariantSpec

METADATA_SCHEMA_VERSION = 2  # also the graph's model_version
ONNX_FORMAT = f"cnp-onnx/{METADATA_SCHEMA_VERSION}"
LEGACY_FORMAT = "cnp-onnx/1"  # bare-string values, checkpoint.* keys
PRODUCER_NAME = "cnp-convert"
CHECKPOINT_PREFIX = "checkpoint."  # the legacy format's checkpoint keys
# Checkpoint facts that are top-level keys already (heatmap_hw is heatmap_height/width).
_TOP_LEVEL_CHECKPOINT_FACTS = frozenset(
    {
        "variant", "depth_dim", "joint_num", "heatmap_hw", "source_sha256", "weights_sha256",
        "weights", "converter_version",
    }
)  # fmt: skip
# Other tools' keys never passed through: onnxsim records its options and empty change lists.
_DROPPED_PREFIXES = ("onnxsim.",)
# Keys that hold one field's parts (heatmap_hw, input_hw) or facts derived from others.
_SPLIT_FIELDS = {
    "heatmap_hw": ("heatmap_height", "heatmap_width"),
    "input_hw": ("input_height", "input_width"),
}
_SPLIT_KEYS = frozenset({*(k for pair in _SPLIT_FIELDS.values() for k in pair), "heatmaps_layout"})
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
    simplify_error: str | None = None  # why the graph was kept unsimplified, when it was
    precision: str = "fp32"
    format: str = ONNX_FORMAT
    # JSON-able checkpoint provenance (legacy graphs: its strings); duplicates are not written.
    checkpoint: dict[str, object] = field(default_factory=dict, compare=False)

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

    def to_values(self) -> dict[str, object]:
        """Our keys with their JSON-able values (to_props encodes each one), format first."""
        values: dict[str, object] = {"format": self.format}
        for item in fields(self):
            if item.name in ("format", "checkpoint"):
                continue
            value = getattr(self, item.name)
            if item.name in _SPLIT_FIELDS:
                values.update(zip(_SPLIT_FIELDS[item.name], value, strict=True))
            elif item.name == "batch":
                values["batch"] = value if value == "dynamic" else int(value)
            else:
                values[item.name] = _json_able(value)
        if "heatmaps" in self.outputs:
            values["heatmaps_layout"] = HEATMAPS_LAYOUT
        values["checkpoint"] = {
            k: _json_able(v)
            for k, v in self.checkpoint.items()
            if k not in _TOP_LEVEL_CHECKPOINT_FACTS
        }
        return values

    def to_props(self) -> dict[str, str]:
        return {key: json.dumps(value) for key, value in self.to_values().items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> OnnxMetadata:
        """Parse our keys (either format); a half-present or malformed set names the source."""
        try:
            if props.get("format") == LEGACY_FORMAT:
                return cls._from_values(_legacy_values(props))
            ours = {f.name for f in fields(cls)} | _SPLIT_KEYS
            return cls._from_values({k: json.loads(v) for k, v in props.items() if k in ours})
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)[:200]
            if isinstance(exc, RecursionError):
                reason = "a value nested too deeply"
            raise OnnxModelError(
                f"{source}: cnp-convert metadata is incomplete or malformed ({reason})"
            ) from None

    @classmethod
    def _from_values(cls, values: Mapping[str, object]) -> OnnxMetadata:
        """Every field from its JSON value(s), each type-checked by its annotation's kind."""
        parsed: dict[str, object] = {}
        for item in fields(cls):
            name = item.name
            if name in _SPLIT_FIELDS:
                parsed[name] = tuple(_typed(values[k], int, k) for k in _SPLIT_FIELDS[name])
            elif name == "batch":
                batch = values["batch"]
                parsed[name] = batch if batch == "dynamic" else str(_typed(batch, int, "batch"))
            elif name == "checkpoint":
                checkpoint = values.get("checkpoint", {})
                if not isinstance(checkpoint, dict):
                    raise TypeError("checkpoint is not a JSON object")
                parsed[name] = dict(checkpoint)
            elif name in values or item.default is MISSING:
                parsed[name] = _PARSERS[str(item.type)](values[name], name)
        return cls(**parsed)  # type: ignore[arg-type]

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


def _json_able(value: object) -> object:
    """Tuples (nested too) as lists, for json.dumps to write them as JSON arrays."""
    return [_json_able(v) for v in value] if isinstance(value, tuple) else value


def _legacy_values(props: Mapping[str, str]) -> dict[str, object]:
    """cnp-onnx/1's props (bare strings and numbers as text, lists as JSON, checkpoint facts as
    checkpoint.* keys) as the JSON values of the current format."""
    kinds = {f.name: str(f.type) for f in fields(OnnxMetadata)}
    values: dict[str, object] = {}
    for key, raw in props.items():
        if key.startswith(CHECKPOINT_PREFIX):
            continue
        kind = "int" if key in _SPLIT_KEYS - {"heatmaps_layout"} else kinds.get(key)
        if kind is None:
            continue
        if key == "batch":
            values[key] = raw if raw == "dynamic" else int(raw)
        elif kind == "int":
            values[key] = int(raw)
        elif kind == "bool":
            values[key] = raw == "true"
        elif kind.startswith("str"):
            values[key] = raw
        else:
            values[key] = json.loads(raw)
    values["checkpoint"] = {
        k[len(CHECKPOINT_PREFIX) :]: v for k, v in props.items() if k.startswith(CHECKPOINT_PREFIX)
    }
    return values


def _triple(values: object, cast: Callable[[object], T]) -> tuple[T, T, T]:
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"expected a list of 3 values, got {str(values)[:80]!r}")
    return (cast(values[0]), cast(values[1]), cast(values[2]))


def _typed(value: object, kind: type[T], key: str) -> T:
    """value if it is JSON of that kind (an int is not a bool, a bool is not an int)."""
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ValueError(f"{key} is {str(value)[:80]!r}, not a JSON {kind.__name__}")
    return value


def _list(value: object, key: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{key} is {str(value)[:80]!r}, not a JSON list")
    return value


def _pair(value: object, key: str) -> tuple[int, int]:
    a, b = _list(value, key)
    return (_typed(a, int, key), _typed(b, int, key))


# Each field's JSON value, checked by the kind its annotation names.
_PARSERS: dict[str, Callable[[object, str], object]] = {
    "str": lambda v, k: _typed(v, str, k),
    "int": lambda v, k: _typed(v, int, k),
    "bool": lambda v, k: _typed(v, bool, k),
    "str | None": lambda v, k: None if v is None else _typed(v, str, k),
    "tuple[str, ...]": lambda v, k: tuple(_typed(item, str, k) for item in _list(v, k)),
    "tuple[tuple[int, int], ...]": lambda v, k: tuple(_pair(item, k) for item in _list(v, k)),
    "tuple[float, float, float]": lambda v, k: _triple(v, float),
    "tuple[int, int, int]": lambda v, k: _triple(v, int),
}


def write_onnx_metadata(model: onnx.ModelProto, metadata: OnnxMetadata) -> onnx.ModelProto:
    """Replace our keys in model.metadata_props and name cnp-convert as the producer. Mutates.

    Other tools' keys are kept when their value is JSON (rewrites, quantization ...); onnxsim's
    record of its own options, empty or bare-text values (onnxruntime's quantizer writes
    ``onnx.infer``) and the checkpoint.* keys of a graph written in the old format are dropped.
    """
    props = metadata.to_props()
    kept = [
        (p.key, p.value)
        for p in model.metadata_props
        if p.key not in props
        and _is_json(p.value)
        and not p.key.startswith((*_DROPPED_PREFIXES, CHECKPOINT_PREFIX))
    ]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = PRODUCER_NAME
    model.producer_version = metadata.converter_version
    model.model_version = METADATA_SCHEMA_VERSION
    return model


def load_onnx_model(path: str | Path, *, weights: bool = True) -> onnx.ModelProto:
    """onnx.load with one-line errors naming the file; rejects files that parse to no graph."""
    path = Path(path)
    if path.is_dir():
        raise OnnxModelError(f"{path}: a folder (an unzipped checkpoint?), not an ONNX graph")
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such file")
    kind = _checkpoint_kind(path)
    if kind is not None:
        raise OnnxModelError(
            f"{path}: {kind}, which is a checkpoint's container, not an ONNX graph",
            remedies=[("checkpoint", "with it, and the .onnx file as the graph")],
        )
    try:
        model = onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # protobuf DecodeError and friends
        raise OnnxModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from None
    # Arbitrary bytes (even an empty file) can parse as an empty ModelProto.
    if not model.graph.node or not model.graph.input or not model.opset_import:
        raise OnnxModelError(f"{path}: not an ONNX model (no graph, inputs or opset)")
    check_graph_text(path, model)
    return model


def _checkpoint_kind(path: Path) -> str | None:
    """What a checkpoint file given as a graph is, from its first bytes (None: not one of them).
    An ONNX file is a protobuf ModelProto; none of its fields encodes as these bytes."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save's format)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle (torch.save's old format)"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 27:
        return "a safetensors file"
    return None


def read_onnx_metadata(model_or_path: onnx.ModelProto | str | Path) -> OnnxMetadata | None:
    """Our metadata from a model or a file; None when the graph carries none of it."""
    if isinstance(model_or_path, onnx.ModelProto):
        model, source = model_or_path, "model"
    else:
        model, source = load_onnx_model(model_or_path, weights=False), str(model_or_path)
    props = {}
    for index, prop in enumerate(model.metadata_props):
        # protobuf hands back bytes for a string field that is not valid UTF-8
        if not isinstance(prop.key, str) or not isinstance(prop.value, str):
            raise OnnxModelError(f"{source}: metadata entry {index} is not UTF-8 text")
        props[prop.key] = prop.value
    written = _format_of(props.get("format"))
    if written is None:
        return None
    if written not in (ONNX_FORMAT, LEGACY_FORMAT):
        raise OnnxModelError(
            f"{source}: metadata format {written!r} is not {ONNX_FORMAT!r} "
            "(written by another cnp-convert version)"
        )
    return OnnxMetadata.from_props(props, source)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _format_of(raw: str | None) -> str | None:
    """The cnp-onnx format a ``format`` value names (bare in format 1, JSON since), or None."""
    if raw is None:
        return None
    if raw.startswith("cnp-onnx/"):
        return raw
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, str) and value.startswith("cnp-onnx/") else None
