"""Seeded random weights: deterministic, shaped like the model, and non-degenerate.

Random weights exist to test the conversion path, so what matters is that the graph computes
something a conversion bug would visibly change. Measured in float64 on 2 seeded images and 2
synthetic crops per variant (seed 0 weights; XS / S / M / L):

- heatmap logit std per joint: 2.94-4.70 / 3.26-5.62 / 3.78-5.81 / 3.68-5.91; max |logit| 20.7 /
  25.9 / 27.0 / 29.1  -> asserted within 1..12 and below 60;
- largest cell probability of a joint's softmax: 0.279 / 0.175 / 0.042 / 0.059 at most, 0.0060 /
  0.0101 / 0.0025 / 0.0021 at least -> asserted below 0.6 (never saturated) and, for every joint,
  above 20x the uniform 1/(D*H*W) (3e-5 for XS/S, 4e-6 for M/L: never flat);
- per-joint spread of the coordinates across the 4 images (norm of the per-axis std, heatmap
  units): at least 2.63 / 2.40 / 5.03 / 6.02 -> asserted at least 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from converter.checkpoints.fabricate import seeded_state_dict
from converter.core.model import build_model
from converter.core.variants import VARIANTS, get_variant
from converter.h36m.preprocess import normalize_images, seeded_images
from converter.h36m.synthetic import synthetic_crops

LOGIT_STD_RANGE = (1.0, 12.0)
MAX_ABS_LOGIT = 60.0
MAX_CELL_PROBABILITY = 0.6
MIN_PEAK_OVER_UNIFORM = 20.0
MIN_JOINT_SPREAD = 1.0  # heatmap units


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    spec = get_variant("XS")
    first, again, other = (seeded_state_dict(spec, s) for s in (3, 3, 4))
    assert list(first) == list(again)
    assert all(torch.equal(first[k], again[k]) for k in first)
    floats = [k for k, v in first.items() if v.is_floating_point() and v.numel() > 1]
    assert not any(torch.equal(first[k], other[k]) for k in floats if "running" not in k)


def test_weights_are_handed_out_as_copies() -> None:
    spec = get_variant("XS")
    state = seeded_state_dict(spec, 5)
    state["head.final_layer.weight"].zero_()
    assert seeded_state_dict(spec, 5)["head.final_layer.weight"].abs().sum() > 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_weights_fit_the_model_exactly(variant: str) -> None:
    model = build_model(get_variant(variant))
    state = seeded_state_dict(get_variant(variant), 0)
    expected = model.state_dict()
    assert list(state) == list(expected)
    for name, tensor in state.items():
        assert tensor.shape == expected[name].shape and tensor.dtype == expected[name].dtype, name
    model.load_state_dict(state, strict=True)


def test_stem_batchnorm_statistics_match_the_stem_on_uniform_pixels() -> None:
    """Independent check of the analytic stem statistics: run the stem conv on 0..255 pixels."""
    spec = get_variant("XS")
    state = seeded_state_dict(spec, 0)
    rng = np.random.default_rng(99)
    pixels = rng.uniform(0.0, 255.0, size=(64, 64, 64, 3))
    x = torch.from_numpy(normalize_images(pixels, spec)).double()
    weight = state["backbone.downsample_layers.0.0.weight"].double()
    bias = state["backbone.downsample_layers.0.0.bias"].double()
    out = torch.nn.functional.conv2d(x, weight, bias, stride=4)
    mean = out.mean(dim=(0, 2, 3))
    var = out.var(dim=(0, 2, 3))
    running_mean = state["backbone.downsample_layers.0.1.running_mean"].double()
    running_var = state["backbone.downsample_layers.0.1.running_var"].double()
    # 16,384 samples per channel: the mean is known to ~1 % of the std, the variance to ~2 %.
    assert torch.all((mean - running_mean).abs() <= 0.05 * var.sqrt())
    assert torch.all((var / running_var - 1).abs() <= 0.1)


@pytest.fixture(scope="module")
def fp32_outputs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each variant's coords and heatmap logits in fp32, as users run the fabricated weights."""
    outputs = {}
    for name, spec in VARIANTS.items():
        model = build_model(spec)
        model.load_state_dict(seeded_state_dict(spec, 0))
        images = np.concatenate(
            [
                normalize_images(seeded_images(2, 11, spec.input_hw), spec),
                synthetic_crops(spec, 2, 3).images,
            ]
        )
        with torch.inference_mode():
            coords, maps = model.forward_heatmaps(torch.from_numpy(images))
        outputs[name] = (coords, maps.reshape(images.shape[0], spec.joint_num, -1))
    return outputs


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_heatmaps_are_finite_and_moderate(fp32_outputs, variant: str) -> None:
    _, logits = fp32_outputs[variant]
    assert torch.isfinite(logits).all()
    spread = logits.std(dim=2)
    assert LOGIT_STD_RANGE[0] <= float(spread.min()) and float(spread.max()) <= LOGIT_STD_RANGE[1]
    assert float(logits.abs().max()) < MAX_ABS_LOGIT


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_softmax_is_peaked_but_not_saturated(fp32_outputs, variant: str) -> None:
    _, logits = fp32_outputs[variant]
    peak = torch.softmax(logits, dim=2).max(dim=2).values
    cells = logits.shape[2]
    assert float(peak.max()) < MAX_CELL_PROBABILITY
    assert float(peak.min()) > MIN_PEAK_OVER_UNIFORM / cells


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_coordinates_move_with_the_image(fp32_outputs, variant: str) -> None:
    coords, _ = fp32_outputs[variant]
    spread = coords.std(dim=0).norm(dim=1)  # per joint, across images
    assert float(spread.min()) >= MIN_JOINT_SPREAD
    spec = get_variant(variant)
    h, w = spec.heatmap_hw
    upper = torch.tensor([w - 1, h - 1, spec.depth_dim - 1], dtype=coords.dtype)
    assert torch.all(coords >= 0) and torch.all(coords <= upper)
