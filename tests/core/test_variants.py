from __future__ import annotations

import pytest

from converter.core.complexity import (
    conv_macs,
    spec_conv_macs,
    spec_params,
    state_dict_elements,
    trainable_params,
)
from converter.core.errors import VariantError
from converter.core.model import build_model
from converter.core.variants import VARIANTS, get_variant

# Facts §3.1: trainable parameters and state-dict elements (BN buffers included).
EXPECTED = {
    "XS": (3_528_008, 3_534_140, 194),
    "S": (7_438_976, 7_448_954, 260),
    "M": (7_587_008, 7_596_986, 260),
    "L": (8_380_352, 8_391_354, 260),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_parameter_counts_match_paper_and_checkpoints(name: str) -> None:
    spec = get_variant(name)
    model = build_model(spec)
    params, elements, tensors = EXPECTED[name]
    assert trainable_params(model) == params
    assert state_dict_elements(model) == elements
    assert len(model.state_dict()) == tensors
    assert round(params / 1e6, 2) == spec.paper.params_m


@pytest.mark.parametrize("name", ["M", "L"])
def test_conv_macs_within_two_percent_of_paper(name: str) -> None:
    spec = get_variant(name)
    macs = conv_macs(build_model(spec), spec.input_hw)
    assert abs(macs / 1e9 - spec.paper.gflops) / spec.paper.gflops < 0.02


# The variant table of docs/checkpoints.md (conv GMACs, 3 decimals), measured on built models.
README_GMACS = {"XS": 0.815, "S": 1.738, "M": 2.795, "L": 4.264}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_from_the_spec_match_the_readme_table(name: str) -> None:
    spec = get_variant(name)
    assert spec_params(spec) == EXPECTED[name][0]
    assert round(spec_conv_macs(spec) / 1e9, 3) == README_GMACS[name]


def test_counts_from_the_spec_equal_the_built_model() -> None:
    """What `variants` prints (no model built) against hooks on every conv of a real XS."""
    spec = get_variant("XS")
    model = build_model(spec)
    assert spec_params(spec) == trainable_params(model)
    assert spec_conv_macs(spec) == conv_macs(model, spec.input_hw)


def test_heatmap_shapes_follow_upsampling_flags() -> None:
    assert get_variant("XS").heatmap_hw == (32, 32)
    assert get_variant("S").heatmap_hw == (32, 32)
    assert get_variant("M").heatmap_hw == (64, 64)
    assert get_variant("L").heatmap_hw == (64, 64)
    assert [VARIANTS[n].final_channels for n in VARIANTS] == [576, 576, 1152, 1152]


def test_unknown_variant_lists_known_ones() -> None:
    with pytest.raises(VariantError, match="known variants: XS, S, M, L"):
        get_variant("XL")
    assert get_variant("xs").name == "XS"


def test_shape_facts_line_by_hand() -> None:
    # ConvNeXtPose-XS: Atto backbone, 2 upsampling blocks; L: Femto-L, 3 (the paper's table 1)
    assert get_variant("XS").describe() == (
        "ConvNeXtPose-XS: Atto depths [2, 2, 6, 2] dims [40, 80, 160, 320] (stem 40 ch, stage 3 "
        "has 6 blocks), head 128, depth_dim 32, 2UP -> heatmap 32x32x32"
    )
    assert get_variant("L").describe() == (
        "ConvNeXtPose-L: Femto-L depths [3, 3, 9, 3] dims [48, 96, 192, 384] (stem 48 ch, stage 3 "
        "has 9 blocks), head 512, depth_dim 64, 3UP -> heatmap 64x64x64"
    )
