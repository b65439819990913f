"""From a raw state dict to the canonical one: pure functions over dicts, plus the metadata.

Steps, in order: strip wrapper prefixes (``module.``, ``_orig_mod.``), rename the legacy numbered
head keys (``deconv_layers_N.0/.1/.2``) to ``dwconv/norm/pwconv``, decide the variant from tensor
shapes alone, then require the exact key set and shapes of that variant. Nothing passes through
silently: any key that is neither renamed nor expected is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..core.errors import CheckpointError, VariantError, VariantMismatchError
from ..core.model import ConvNeXtPose, build_model
from ..core.variants import VARIANTS, VariantSpec, get_variant
from .reader import RawCheckpoint, read_checkpoint

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
LEGACY_HEAD_NAMES = {"0": "dwconv", "1": "norm", "2": "pwconv"}
_LEGACY_HEAD_KEY = re.compile(r"^head\.deconv_layers_([123])\.([012])\.(.+)$")
_OFFICIAL_HEAD_KEY = re.compile(r"^head\.deconv_layers_[123]\.(dwconv|norm|pwconv)\.")
_STAGE_BLOCK_KEY = re.compile(r"^backbone\.stages\.(\d+)\.(\d+)\.")
UPSAMPLING_NOTE = (
    "upsampling flags and heatmap size cannot be read from tensors (bilinear upsampling has "
    "none); they come from the variant table (paper: XS/S 2UP, M/L 3UP)"
)
CANONICAL_FORMAT = "cnp-canonical/1"

_STEM = "backbone.downsample_layers.0.0.weight"
_HEAD_PW = "head.deconv_layers_1.pwconv.weight"
_HEAD_DW = "head.deconv_layers_1.dwconv.weight"
_FINAL = "head.final_layer.weight"


@dataclass(frozen=True)
class ShapeEvidence:
    """What the tensors say, read from their shapes only."""

    stem_channels: int
    depths: tuple[int, ...]
    dims: tuple[int, ...]
    head_width: int
    head_kernel: int
    final_channels: int
    depth_dim: int

    def describe(self) -> str:
        return (
            f"stem {self.stem_channels} ch, blocks per stage {list(self.depths)} (stage 3 has "
            f"{self.depths[2]}), dims {list(self.dims)}, head {self.head_width}, final layer "
            f"{self.final_channels} = 18 x depth_dim {self.depth_dim}"
        )


@dataclass(frozen=True)
class RenameResult:
    state_dict: dict[str, torch.Tensor]
    head_naming: str  # "legacy-numbered" | "official"
    prefixes_stripped: tuple[str, ...]
    keys_renamed: int


@dataclass(frozen=True)
class CheckpointMetadata:
    variant: str
    depths: tuple[int, ...]
    dims: tuple[int, ...]
    head_width: int
    depth_dim: int
    joint_num: int
    heatmap_hw: tuple[int, int]
    upsample: tuple[bool, ...]
    head_naming: str
    epoch: int | None
    source_name: str
    source_sha256: str
    source_size: int
    weights_sha256: str
    keys_renamed: int
    prefixes_stripped: tuple[str, ...]
    container: str
    weights: str  # "trained" | "random"
    evidence: str
    converter_version: str = __version__
    upsample_note: str = UPSAMPLING_NOTE

    def to_strings(self) -> dict[str, str]:
        """Flat str -> str (safetensors headers and ONNX metadata_props take only strings)."""
        out = {"format": CANONICAL_FORMAT}
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                out[key] = ",".join(
                    str(v).lower() if isinstance(v, bool) else str(v) for v in value
                )
            elif value is None:
                out[key] = ""
            else:
                out[key] = str(value)
        return out

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> CheckpointMetadata:
        def ints(key: str) -> tuple[int, ...]:
            return tuple(int(v) for v in values[key].split(",") if v)

        try:
            return cls(
                variant=values["variant"],
                depths=ints("depths"),
                dims=ints("dims"),
                head_width=int(values["head_width"]),
                depth_dim=int(values["depth_dim"]),
                joint_num=int(values["joint_num"]),
                heatmap_hw=ints("heatmap_hw"),  # type: ignore[arg-type]
                upsample=tuple(v == "true" for v in values["upsample"].split(",")),
                head_naming=values["head_naming"],
                epoch=int(values["epoch"]) if values["epoch"] else None,
                source_name=values["source_name"],
                source_sha256=values["source_sha256"],
                source_size=int(values["source_size"]),
                weights_sha256=values["weights_sha256"],
                keys_renamed=int(values["keys_renamed"]),
                prefixes_stripped=tuple(v for v in values["prefixes_stripped"].split(",") if v),
                container=values["container"],
                weights=values["weights"],
                evidence=values["evidence"],
                converter_version=values.get("converter_version", "unknown"),
            )
        except (KeyError, ValueError) as exc:
            raise CheckpointError(
                f"canonical metadata is incomplete or malformed ({exc})"
            ) from None


@dataclass(frozen=True)
class CanonicalCheckpoint:
    spec: VariantSpec
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    metadata: CheckpointMetadata
    evidence: ShapeEvidence
    raw: RawCheckpoint | None = field(default=None, repr=False)


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict, tuple[str, ...]]:
    """Remove DataParallel / torch.compile wrapper prefixes, wherever they are stacked."""
    stripped: dict[str, torch.Tensor] = {}
    found: list[str] = []
    for key, tensor in state_dict.items():
        name = key
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    changed = True
                    if prefix not in found:
                        found.append(prefix)
        if name in stripped:
            raise CheckpointError(f"key {key!r} collides with another key after removing {found}")
        stripped[name] = tensor
    return stripped, tuple(found)


def rename_head_keys(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict, str, int]:
    """Legacy numbered head names -> official names. Returns (dict, naming found, count)."""
    legacy = [k for k in state_dict if _LEGACY_HEAD_KEY.match(k)]
    official = [k for k in state_dict if _OFFICIAL_HEAD_KEY.match(k)]
    if legacy and official:
        raise CheckpointError(
            f"the head mixes legacy numbered keys ({legacy[0]}) and official keys ({official[0]})"
        )
    if not legacy:
        return dict(state_dict), "official", 0
    renamed = {}
    for key, tensor in state_dict.items():
        match = _LEGACY_HEAD_KEY.match(key)
        if match:
            block, index, leaf = match.groups()
            key = f"head.deconv_layers_{block}.{LEGACY_HEAD_NAMES[index]}.{leaf}"
        renamed[key] = tensor
    return renamed, "legacy-numbered", len(legacy)


def canonical_names(state_dict: Mapping[str, torch.Tensor]) -> RenameResult:
    stripped, prefixes = strip_prefixes(state_dict)
    renamed, naming, count = rename_head_keys(stripped)
    return RenameResult(renamed, naming, prefixes, count)


def read_evidence(state_dict: Mapping[str, torch.Tensor]) -> ShapeEvidence:
    """Read the architecture off tensor shapes; explain what is missing if it is no ConvNeXtPose."""
    anchors = [
        _STEM,
        *(f"backbone.downsample_layers.{i}.1.weight" for i in (1, 2, 3)),
        _HEAD_DW,
        _HEAD_PW,
        _FINAL,
    ]
    missing = [k for k in anchors if k not in state_dict]
    if missing:
        sample = ", ".join(list(state_dict)[:4]) or "no keys at all"
        if len(missing) == len(anchors):
            raise CheckpointError(
                "not a ConvNeXtPose state dict: none of its backbone/head tensors are present "
                f"(first keys: {sample})"
            )
        raise CheckpointError(
            f"not a complete ConvNeXtPose state dict: missing {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        match = _STAGE_BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    depths = tuple(len(blocks.get(i, ())) for i in range(4))
    stem = state_dict[_STEM]
    downs = (state_dict[f"backbone.downsample_layers.{i}.1.weight"] for i in (1, 2, 3))
    dims = (int(stem.shape[0]), *(int(t.shape[0]) for t in downs))
    final_channels = int(state_dict[_FINAL].shape[0])
    if final_channels % 18:
        raise CheckpointError(
            f"final layer has {final_channels} outputs, not a multiple of 18 joints "
            "(a checkpoint for another joint set, e.g. MuCo's 21, is not supported)"
        )
    return ShapeEvidence(
        stem_channels=dims[0],
        depths=depths,
        dims=dims,
        head_width=int(state_dict[_HEAD_PW].shape[0]),
        head_kernel=int(state_dict[_HEAD_DW].shape[-1]),
        final_channels=final_channels,
        depth_dim=final_channels // 18,
    )


def spec_evidence(spec: VariantSpec) -> str:
    return (
        f"{spec.name} has a {spec.dims[0]}-ch stem, {spec.depths[2]} blocks in stage 3, "
        f"head {spec.head_width}, depth_dim {spec.depth_dim}"
    )


def match_variant(evidence: ShapeEvidence) -> VariantSpec:
    for spec in VARIANTS.values():
        if (
            spec.depths == evidence.depths
            and spec.dims == evidence.dims
            and spec.head_width == evidence.head_width
            and spec.depth_dim == evidence.depth_dim
            and spec.head_kernel == evidence.head_kernel
        ):
            return spec
    known = "; ".join(spec_evidence(s) for s in VARIANTS.values())
    raise VariantError(f"tensors fit no released variant ({evidence.describe()}); {known}")


def explain_mismatch(detected: VariantSpec, evidence: ShapeEvidence, requested: VariantSpec) -> str:
    return (
        f"variant {requested.name} was asked for, but the tensors are "
        f"ConvNeXtPose-{detected.name} ({evidence.describe()}); {spec_evidence(requested)}"
    )


def check_against_model(state_dict: Mapping[str, torch.Tensor], spec: VariantSpec) -> dict:
    """Exact key set and shapes of the variant; returns the dict ordered like the model's."""
    template = ConvNeXtPose(spec).state_dict()
    missing = [k for k in template if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in template]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s) (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(
                f"{len(unexpected)} unexpected tensor(s) (first: {', '.join(unexpected[:3])})"
            )
        raise CheckpointError(f"does not match ConvNeXtPose-{spec.name}: " + "; ".join(parts))
    ordered = {}
    for key, expected in template.items():
        if key not in state_dict:  # num_batches_tracked only: irrelevant at inference
            ordered[key] = torch.zeros((), dtype=torch.int64)
            continue
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{key} is a {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != tuple(expected.shape):
            raise CheckpointError(
                f"size mismatch for {key}: checkpoint {list(tensor.shape)}, "
                f"ConvNeXtPose-{spec.name} expects {list(expected.shape)}"
            )
        if expected.is_floating_point():
            if not tensor.is_floating_point():
                raise CheckpointError(f"{key} has dtype {tensor.dtype}, expected floating point")
            tensor = tensor.to(torch.float32)
            # A variance is a mean of squares: a negative one is no BatchNorm's statistic (it
            # would only surface later as a non-finite forward pass).
            if key.endswith(".running_var") and bool((tensor < 0).any()):
                low = float(tensor.min())
                raise CheckpointError(f"{key} holds a negative variance ({low:g}): not a statistic")
        ordered[key] = tensor.contiguous()
    return ordered


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, shapes and bytes of every tensor but num_batches_tracked.

    The same weights give the same digest in every container form, so a graph can be traced
    back to the weights it came from whatever file the user holds.
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        if key.endswith("num_batches_tracked"):
            continue
        tensor = state_dict[key].detach().to(torch.float32).contiguous()
        digest.update(f"{key}:{list(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def canonicalize(raw: RawCheckpoint, variant: str | None = None) -> CanonicalCheckpoint:
    """RawCheckpoint -> CanonicalCheckpoint. The caller prefixes errors with the file name."""
    names = canonical_names(raw.tensors)
    evidence = read_evidence(names.state_dict)
    detected = match_variant(evidence)
    if variant is not None:
        requested = get_variant(variant)
        if requested.name != detected.name:
            raise VariantMismatchError(explain_mismatch(detected, evidence, requested))
    state_dict = check_against_model(names.state_dict, detected)
    header = raw.header_metadata
    from_canonical = header.get("format") == CANONICAL_FORMAT
    # A canonical file keeps pointing at the release it came from.
    source = CheckpointMetadata.from_strings(header) if from_canonical else None
    metadata = CheckpointMetadata(
        variant=detected.name,
        depths=detected.depths,
        dims=detected.dims,
        head_width=detected.head_width,
        depth_dim=detected.depth_dim,
        joint_num=detected.joint_num,
        heatmap_hw=detected.heatmap_hw,
        upsample=detected.upsample,
        head_naming=source.head_naming if source else names.head_naming,
        epoch=source.epoch if source else raw.epoch,
        source_name=source.source_name if source else Path(raw.path).name,
        source_sha256=source.source_sha256 if source else raw.sha256,
        source_size=source.source_size if source else raw.size_bytes,
        weights_sha256=weights_digest(state_dict),
        keys_renamed=source.keys_renamed if source else names.keys_renamed,
        prefixes_stripped=source.prefixes_stripped if source else names.prefixes_stripped,
        container=source.container if source else raw.container,
        weights=source.weights if source else "trained",
        evidence=evidence.describe(),
    )
    return CanonicalCheckpoint(detected, state_dict, metadata, evidence, raw)


def load_checkpoint(path: str | Path, variant: str | None = None) -> CanonicalCheckpoint:
    """Read any released form or a canonical file, and canonicalize it."""
    raw = read_checkpoint(path)
    try:
        return canonicalize(raw, variant)
    except (CheckpointError, VariantError) as exc:
        raise type(exc)(f"{path}: {exc}") from None


def random_checkpoint(spec: VariantSpec, seed: int = 0) -> CanonicalCheckpoint:
    """Seeded stand-in weights for graph inspection and benchmarks (weights=random)."""
    from .fabricate import (
        seeded_state_dict,  # fabricate imports the model; keep lazy
    )

    state_dict = seeded_state_dict(spec, seed)
    evidence = read_evidence(state_dict)
    metadata = CheckpointMetadata(
        variant=spec.name,
        depths=spec.depths,
        dims=spec.dims,
        head_width=spec.head_width,
        depth_dim=spec.depth_dim,
        joint_num=spec.joint_num,
        heatmap_hw=spec.heatmap_hw,
        upsample=spec.upsample,
        head_naming="official",
        epoch=None,
        source_name=f"random(seed={seed})",
        source_sha256="",
        source_size=0,
        weights_sha256=weights_digest(state_dict),
        keys_renamed=0,
        prefixes_stripped=(),
        container="none",
        weights="random",
        evidence=evidence.describe(),
    )
    return CanonicalCheckpoint(spec, state_dict, metadata, evidence)


def build_loaded_model(ckpt: CanonicalCheckpoint) -> ConvNeXtPose:
    """The model with the checkpoint loaded strictly (zero missing, zero unexpected), eval mode."""
    model = build_model(ckpt.spec)
    result = model.load_state_dict(ckpt.state_dict, strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict already raises; belt and braces
        raise CheckpointError(f"strict load failed: {result}")
    return model.eval()


_NAME_CLAIM = re.compile(r"(?:^|[^a-z0-9])(xs|s|m|l)(?:[^a-z0-9]|$)", re.IGNORECASE)


def variant_claimed_by_name(path: str | Path) -> str | None:
    """The variant a file name claims ('ConvNeXtPose_XS.tar' -> 'XS'), or None."""
    stem = Path(path).name.lower()
    if "convnextpose" not in stem.replace("-", "").replace("_", ""):
        return None
    tail = re.split(r"conv[-_]?next[-_]?pose", stem, maxsplit=1)[-1]
    match = _NAME_CLAIM.search(tail)
    return match.group(1).upper() if match else None
