"""The variant table: parameters and conv MACs counted from each spec, next to the paper's."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .complexity import spec_conv_macs, spec_params
from .variants import VARIANTS, VariantSpec


@dataclass(frozen=True)
class VariantRow:
    name: str
    backbone: str
    depths: tuple[int, ...]
    dims: tuple[int, ...]
    head_width: int
    upsample: tuple[bool, ...]
    heatmap: tuple[int, int, int]
    params: int
    conv_macs: int
    paper_params_m: float
    paper_gflops: float
    paper_mpjpe_p2_mm: float | None
    paper_pa_mpjpe_p1_mm: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def table_line(self) -> str:
        mpjpe = "-" if self.paper_mpjpe_p2_mm is None else f"{self.paper_mpjpe_p2_mm:.2f}"
        heatmap = "x".join(str(v) for v in self.heatmap)
        return (
            f"{self.name:<4} {self.backbone:<8} {list(self.depths)!s:<13} "
            f"{list(self.dims)!s:<18} {self.head_width:>4} {sum(self.upsample):>2}U "
            f"{heatmap:>9} {self.params:>10,} {self.paper_params_m:>5.2f}M "
            f"{self.conv_macs / 1e9:>6.3f} {self.paper_gflops:>5.2f} {mpjpe:>8}"
        )


def variant_row(spec: VariantSpec) -> VariantRow:
    # Counted from the layer shapes, not a built model (tests hold the two equal).
    return VariantRow(
        name=spec.name,
        backbone=spec.backbone_name,
        depths=spec.depths,
        dims=spec.dims,
        head_width=spec.head_width,
        upsample=spec.upsample,
        heatmap=(*spec.heatmap_hw, spec.depth_dim),
        params=spec_params(spec),
        conv_macs=spec_conv_macs(spec),
        paper_params_m=spec.paper.params_m,
        paper_gflops=spec.paper.gflops,
        paper_mpjpe_p2_mm=spec.paper.mpjpe_p2_mm,
        paper_pa_mpjpe_p1_mm=spec.paper.pa_mpjpe_p1_mm,
    )


def variant_rows() -> list[VariantRow]:
    return [variant_row(spec) for spec in VARIANTS.values()]
