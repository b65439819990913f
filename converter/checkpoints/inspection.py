"""What a checkpoint really is, with the evidence from tensor shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.variants import get_variant
from .canonical import load_checkpoint, spec_evidence, variant_claimed_by_name


@dataclass(frozen=True)
class InspectReport:
    path: str
    container: str
    archive_prefix: str | None
    wrapper: str
    head_naming: str
    prefixes_stripped: tuple[str, ...]
    keys_renamed: int
    variant: str
    evidence: str
    heatmap: tuple[int, int, int]
    upsample: tuple[bool, ...]
    upsample_note: str
    epoch: int | None
    tensors: int
    parameters: int  # elements of trainable tensors (BN running statistics excluded)
    elements: int  # every element in the state dict
    sha256: str
    size_bytes: int
    weights_sha256: str
    name_claims: str | None
    warnings: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        h, w, d = self.heatmap
        epoch = "unknown" if self.epoch is None else str(self.epoch)
        prefix = f", archive prefix {self.archive_prefix}/" if self.archive_prefix else ""
        stripped = ", ".join(self.prefixes_stripped) or "none"
        return [
            f"file       {self.path} ({self.size_bytes:,} bytes, sha256 {self.sha256[:16]}…)",
            f"container  {self.container}{prefix}; holds {self.wrapper}",
            f"variant    ConvNeXtPose-{self.variant}",
            f"evidence   {self.evidence}",
            f"heatmap    {h}x{w}x{d}, upsampling {list(self.upsample)} (from the variant table)",
            f"head keys  {self.head_naming} ({self.keys_renamed} to rename); prefixes: {stripped}",
            f"epoch      {epoch}",
            f"tensors    {self.tensors} ({self.parameters:,} parameters, "
            f"{self.elements:,} elements with BN buffers)",
        ]


_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def inspect_checkpoint(path: str | Path) -> InspectReport:
    ckpt = load_checkpoint(path)
    raw = ckpt.raw
    assert raw is not None  # load_checkpoint always keeps the raw form
    meta = ckpt.metadata
    claimed = variant_claimed_by_name(path)
    warnings: list[str] = []
    if claimed is not None and claimed != ckpt.spec.name:
        warnings.append(
            f"the file name says {claimed} but the tensors are ConvNeXtPose-{ckpt.spec.name} "
            f"({ckpt.evidence.describe()}); {spec_evidence(get_variant(claimed))}"
        )
    state = ckpt.state_dict
    parameters = sum(t.numel() for k, t in state.items() if not k.endswith(_BUFFERS))
    return InspectReport(
        path=str(path),
        container=raw.container,
        archive_prefix=raw.archive_prefix,
        wrapper=raw.wrapper,
        head_naming=meta.head_naming,
        prefixes_stripped=meta.prefixes_stripped,
        keys_renamed=meta.keys_renamed,
        variant=ckpt.spec.name,
        evidence=meta.evidence,
        heatmap=(*ckpt.spec.heatmap_hw, ckpt.spec.depth_dim),
        upsample=ckpt.spec.upsample,
        upsample_note=meta.upsample_note,
        epoch=meta.epoch,
        tensors=len(raw.tensors),
        parameters=parameters,
        elements=sum(t.numel() for t in state.values()),
        sha256=raw.sha256,
        size_bytes=raw.size_bytes,
        weights_sha256=meta.weights_sha256,
        name_claims=claimed,
        warnings=tuple(warnings),
    )
