"""The four released ConvNeXtPose variants, as data.

Sources: the variant table in shared/reference/convnextpose-facts.md §3.1, checked against the
paper's parameter counts and GFLOPs. Everything a consumer needs to build the network and to
pre/post-process its input and output lives on one frozen VariantSpec.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import VariantError

JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
    "Nose", "Head", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
    "Thorax",
)  # fmt: skip
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13))
SKELETON: tuple[tuple[int, int], ...] = (
    (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6),
)  # fmt: skip
ROOT_INDEX = 0

# Applied to RGB values in 0..255 *without* dividing by 255 first: the reference pipeline feeds a
# float32 patch to ToTensor, which does not rescale floats. The released weights expect this.
PIXEL_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
PIXEL_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
NORMALIZATION_NOTE = (
    "input = (RGB in 0..255 - mean) / std per channel; no division by 255 "
    "(inherited from 3DMPPE_POSENET; the released weights expect it)"
)

BACKBONE_STRIDE = 32


@dataclass(frozen=True)
class PaperFigures:
    """Figures published in the ConvNeXtPose paper (None where not published)."""

    params_m: float
    gflops: float
    mpjpe_p2_mm: float | None
    pa_mpjpe_p1_mm: float | None


@dataclass(frozen=True)
class VariantSpec:
    name: str
    backbone_name: str
    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    head_width: int
    # One flag per head block: does it end with a bilinear x2 upsampling? Cannot be read from
    # tensors (upsampling has none); it comes from the paper's "2UP"/"3UP" column.
    upsample: tuple[bool, bool, bool]
    depth_dim: int
    paper: PaperFigures
    head_kernel: int = 3
    backbone_kernel: int = 7
    input_hw: tuple[int, int] = (256, 256)
    joint_num: int = 18
    joint_names: tuple[str, ...] = JOINT_NAMES
    flip_pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS
    root_index: int = ROOT_INDEX
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD
    bbox_3d_shape_mm: tuple[int, int, int] = (2000, 2000, 2000)

    @property
    def heatmap_hw(self) -> tuple[int, int]:
        factor = 2 ** sum(self.upsample)
        return (
            self.input_hw[0] // BACKBONE_STRIDE * factor,
            self.input_hw[1] // BACKBONE_STRIDE * factor,
        )

    @property
    def num_upsampling(self) -> int:
        return sum(self.upsample)

    @property
    def upsampling_label(self) -> str:
        return f"{self.num_upsampling}UP"

    @property
    def final_channels(self) -> int:
        return self.joint_num * self.depth_dim

    def describe(self) -> str:
        """One line of shape facts, used in error messages and reports."""
        h, w = self.heatmap_hw
        return (
            f"ConvNeXtPose-{self.name}: {self.backbone_name} depths {list(self.depths)} "
            f"dims {list(self.dims)} (stem {self.dims[0]} ch, stage 3 has {self.depths[2]} "
            f"blocks), head {self.head_width}, depth_dim {self.depth_dim}, "
            f"{self.upsampling_label} -> heatmap {h}x{w}x{self.depth_dim}"
        )


_ATTO = ((2, 2, 6, 2), (40, 80, 160, 320))
_FEMTO_L = ((3, 3, 9, 3), (48, 96, 192, 384))

VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec(
            name="XS", backbone_name="Atto", depths=_ATTO[0], dims=_ATTO[1], head_width=128,
            upsample=(True, True, False), depth_dim=32,
            paper=PaperFigures(params_m=3.53, gflops=0.82, mpjpe_p2_mm=56.61, pa_mpjpe_p1_mm=None),
        ),
        VariantSpec(
            name="S", backbone_name="Femto-L", depths=_FEMTO_L[0], dims=_FEMTO_L[1],
            head_width=256, upsample=(True, True, False), depth_dim=32,
            paper=PaperFigures(params_m=7.44, gflops=1.76, mpjpe_p2_mm=51.80, pa_mpjpe_p1_mm=None),
        ),
        VariantSpec(
            name="M", backbone_name="Femto-L", depths=_FEMTO_L[0], dims=_FEMTO_L[1],
            head_width=256, upsample=(True, True, True), depth_dim=64,
            paper=PaperFigures(params_m=7.59, gflops=2.82, mpjpe_p2_mm=51.05, pa_mpjpe_p1_mm=34.5),
        ),
        VariantSpec(
            name="L", backbone_name="Femto-L", depths=_FEMTO_L[0], dims=_FEMTO_L[1],
            head_width=512, upsample=(True, True, True), depth_dim=64,
            paper=PaperFigures(params_m=8.38, gflops=4.30, mpjpe_p2_mm=49.75, pa_mpjpe_p1_mm=32.8),
        ),
    )
}  # fmt: skip


def get_variant(name: str) -> VariantSpec:
    """Look a variant up by name, case-insensitively; unknown names list the known ones."""
    key = name.strip().upper()
    if key not in VARIANTS:
        known = ", ".join(VARIANTS)
        raise VariantError(f"unknown variant {name!r}; known variants: {known}")
    return VARIANTS[key]
