"""Write a canonical checkpoint: safetensors (metadata in its header) or a plain .pth dict."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from ..core.atomic import atomic_output, check_output_path
from ..core.choices import CHECKPOINT_FORMATS as FORMATS
from ..core.errors import OutputError, first_line
from .canonical import (
    CanonicalCheckpoint,
    build_loaded_model,
    variant_claimed_by_name,
)


@dataclass(frozen=True)
class LegacyReport:
    source: str
    output: str
    format: str
    variant: str
    head_naming: str
    keys_renamed: int
    prefixes_stripped: tuple[str, ...]
    tensors: int
    epoch: int | None
    weights_sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


def default_output_path(source: Path, fmt: str, variant: str | None = None) -> Path:
    """ConvNeXtPose_L.tar -> ConvNeXtPose_L.canonical.safetensors, in the working directory.

    variant: what the tensors are; a source name that claims another variant does not pass its
    lie on (ConvNeXtPose_XS.tar holding L -> ConvNeXtPose_L.canonical.safetensors)."""
    claimed = variant_claimed_by_name(source)
    if variant is not None and claimed is not None and claimed != variant:
        return Path(f"ConvNeXtPose_{variant}.canonical.{fmt}")
    stem = re.sub(r"(\.pth)?(\.tar)?$|\.pt$|\.safetensors$", "", Path(source).name) or "checkpoint"
    return Path(f"{stem}.canonical.{fmt}")


def write_canonical(
    ckpt: CanonicalCheckpoint, out: Path, fmt: str = "safetensors", force: bool = False
) -> LegacyReport:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    source = Path(ckpt.raw.path) if ckpt.raw is not None else None
    out = check_output_path(Path(out), (source,) if source else (), force)
    build_loaded_model(ckpt)  # strict load into the built model before anything is written
    tensors = {k: v.contiguous() for k, v in ckpt.state_dict.items()}
    metadata = ckpt.metadata.to_strings()
    with atomic_output(out, overwrite=force) as tmp:
        try:
            if fmt == "safetensors":
                save_file(tensors, str(tmp), metadata=metadata)
            else:
                torch.save({"state_dict": tensors, "cnp_metadata": metadata}, tmp)
        except (SafetensorError, RuntimeError) as exc:  # their wrappers of a failed write
            raise OutputError(f"{out}: cannot be written ({first_line(exc)[:200]})") from None
    meta = ckpt.metadata
    return LegacyReport(
        source=str(source) if source else meta.source_name,
        output=str(out),
        format=fmt,
        variant=meta.variant,
        head_naming=meta.head_naming,
        keys_renamed=meta.keys_renamed,
        prefixes_stripped=meta.prefixes_stripped,
        tensors=len(tensors),
        epoch=meta.epoch,
        weights_sha256=meta.weights_sha256,
    )
