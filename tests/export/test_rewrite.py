"""The head rewrites compute the reference model's function (float64), and the graph facts
follow a final conv that was moved before the last upsampling."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from converter.core.model import MomentSoftArgmax, SoftArgmax, build_model
from converter.core.variants import get_variant
from converter.export.fold import fold_batchnorms
from converter.export.rewrite import (
    FINAL_CONV_BEFORE_UPSAMPLE,
    REWRITES,
    SOFT_ARGMAX_MOMENTS,
    rewrite_head,
)
from converter.graphs.facts import graph_facts, variant_disagreements


def _randomized(variant: str) -> torch.nn.Module:
    """A float64 model with non-trivial BatchNorm statistics and biases (PyTorch's defaults
    are mean 0 / var 1 / bias 0, which would hide a misplaced bias or BatchNorm)."""
    torch.manual_seed(0)
    model = build_model(get_variant(variant)).double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
            elif isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("variant", ["M", "L"])
def test_final_conv_before_upsampling_is_exact(variant: str) -> None:
    model = _randomized(variant)
    rewritten, report = rewrite_head(model, (FINAL_CONV_BEFORE_UPSAMPLE,))
    assert report.applied == (FINAL_CONV_BEFORE_UPSAMPLE,) and report.skipped == ()
    image = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 256, 256)))
    with torch.no_grad():
        coords, heatmaps = model.forward_heatmaps(image)
        coords_r, heatmaps_r = rewritten.forward_heatmaps(image)
    # float64: only rounding differs (the sums run in another order); a misplaced bias or a
    # conv moved across the ReLU would differ by O(0.1).
    assert torch.abs(heatmaps_r - heatmaps).max() < 1e-10
    assert torch.abs(coords_r - coords).max() < 1e-10
    # Parameters keep their names, so checkpoints, folding and precision recipes still apply.
    assert list(rewritten.state_dict()) == list(model.state_dict())
    folded, fold_report = fold_batchnorms(rewritten)
    with torch.no_grad():
        assert torch.abs(folded(image) - coords).max() < 1e-9
    assert fold_report.count == fold_batchnorms(model)[1].count


def test_the_rewrite_needs_the_convex_upsampling() -> None:
    """Why align_corners bilinear commutes with the conv: its weights sum to 1 per pixel. With a
    scale that does not (x2 the values) the bias would be doubled: the test would see it."""
    model = _randomized("L")
    rewritten, _ = rewrite_head(model, (FINAL_CONV_BEFORE_UPSAMPLE,))
    doubling = torch.nn.Sequential(torch.nn.UpsamplingBilinear2d(scale_factor=2))
    for m in (model, rewritten):
        m.head.deconv_layers_3.upsample1 = torch.nn.Sequential(doubling, _Times(2.0))
    image = torch.from_numpy(np.random.default_rng(2).normal(size=(1, 3, 256, 256)))
    with torch.no_grad():
        difference = model.forward_heatmaps(image)[1] - rewritten.forward_heatmaps(image)[1]
    assert torch.abs(difference).max() > 1e-3


class _Times(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _soft_argmax_by_hand(logits: np.ndarray, j: int, d: int, h: int, w: int) -> np.ndarray:
    """numpy: softmax over each joint's D*H*W cells, then E[x], E[y], E[z] by explicit loops."""
    out = np.zeros((logits.shape[0], j, 3))
    for n in range(logits.shape[0]):
        for joint in range(j):
            volume = logits[n, joint * d : (joint + 1) * d]  # (D, H, W)
            p = np.exp(volume - volume.max())
            p /= p.sum()
            zz, yy, xx = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
            out[n, joint] = ((p * xx).sum(), (p * yy).sum(), (p * zz).sum())
    return out


def test_moment_soft_argmax_matches_a_hand_computation() -> None:
    j, d, h, w = 3, 4, 5, 6  # unequal sizes: swapped axes would not go unnoticed
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(2, j * d, h, w))
    expected = _soft_argmax_by_hand(logits, j, d, h, w)
    moments = MomentSoftArgmax(SoftArgmax(j, d, (h, w))).double()
    reference = SoftArgmax(j, d, (h, w)).double()
    with torch.no_grad():
        got = moments(torch.from_numpy(logits)).numpy()
        ref = reference(torch.from_numpy(logits)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(ref, expected, atol=1e-12)


def test_moments_cancel_the_softmax_sums_rounding_in_fp32() -> None:
    # M's volume (18 joints x 64^3 cells), logits spread like a confident heatmap. In fp32 the
    # softmax's sum over 262,144 cells is off by a relative ~3e-5, an error every probability
    # shares: E[x] = sum(p * x) inherits it (measured 9.9e-4 heatmap units against float64),
    # moments over the summed mass cancel it (1.5e-5). The bound sits between the two.
    j, d, h, w = 18, 64, 64, 64
    logits = torch.randn(1, j * d, h, w, generator=torch.Generator().manual_seed(0)) * 5.0
    expected = SoftArgmax(j, d, (h, w)).double()(logits.double())
    moments = MomentSoftArgmax(SoftArgmax(j, d, (h, w)))
    literal = SoftArgmax(j, d, (h, w))
    with torch.no_grad():
        moments_error = (moments(logits).double() - expected).abs().max().item()
        literal_error = (literal(logits).double() - expected).abs().max().item()
    assert moments_error < 1e-4 < literal_error


def test_rewrites_apply_where_they_fit() -> None:
    xs = build_model(get_variant("XS"))
    rewritten, report = rewrite_head(xs)
    assert report.applied == (SOFT_ARGMAX_MOMENTS,)
    assert report.skipped == (FINAL_CONV_BEFORE_UPSAMPLE,)  # XS: nothing upsamples after it
    assert isinstance(rewritten.soft_argmax, MomentSoftArgmax)
    assert type(xs.soft_argmax) is SoftArgmax  # the input model is untouched
    _, none = rewrite_head(xs, ())
    assert none.applied == () and none.to_dict() == {"applied": [], "skipped": []}
    _, both = rewrite_head(build_model(get_variant("M")), REWRITES)
    assert both.applied == REWRITES
    with pytest.raises(ValueError, match="unknown rewrites"):
        rewrite_head(xs, ("fuse_everything",))


def _head_graph(between: tuple[str, ...], resize_input_is_conv: bool = True) -> onnx.ModelProto:
    """x (1, 4, 8, 8) -> final Conv 1152 -> [between ops] -> Resize x2 -> heatmaps."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [
        numpy_helper.from_array(np.zeros((1152, 4, 1, 1), np.float32), "w"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "z"),
    ]
    nodes = [helper.make_node("Conv", ["x", "w"], ["t0"])]
    for i, op in enumerate(between):
        args = ["s", "z"] if op in ("QuantizeLinear", "DequantizeLinear") else []
        attrs = {"to": TensorProto.FLOAT} if op == "Cast" else {}
        nodes.append(helper.make_node(op, [f"t{i}", *args], [f"t{i + 1}"], **attrs))
    last = f"t{len(between)}"
    resize_in = [last, "", "scales"] if resize_input_is_conv else ["x", "", "scales"]
    nodes.append(
        helper.make_node(
            "Resize",
            resize_in,
            ["y"],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        )
    )
    graph = helper.make_graph(nodes, "head", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize(
    "between",
    [(), ("QuantizeLinear", "DequantizeLinear"), ("Cast",)],
    ids=["direct", "qdq", "cast"],
)
def test_facts_see_the_upsampled_heatmap(between: tuple[str, ...]) -> None:
    facts = graph_facts(_head_graph(between))
    assert facts.final_conv_hw == (8, 8)
    assert facts.upsampled_hw == (16, 16) and facts.heatmap_hw == (16, 16)
    assert facts.to_dict()["heatmap_hw"] == [16, 16]


def test_facts_do_not_see_through_real_ops() -> None:
    # A ReLU between the conv and the Resize changes the values: not our rewrite's shape.
    facts = graph_facts(_head_graph(("Relu",)))
    assert facts.upsampled_hw is None and facts.heatmap_hw == (8, 8)


def test_contract_checks_the_upsampled_size() -> None:
    import dataclasses

    base = graph_facts(_head_graph(()))
    spec = get_variant("L")  # heatmap 64x64
    fits = dataclasses.replace(base, final_conv_hw=(32, 32), upsampled_hw=(64, 64))
    assert not [p for p in variant_disagreements(fits, spec) if "heatmap" in p]
    short = dataclasses.replace(base, final_conv_hw=(32, 32), upsampled_hw=(48, 48))
    assert "heatmap is 48x48, L has 64x64" in variant_disagreements(short, spec)
    literal_wrong = dataclasses.replace(base, final_conv_hw=(32, 32), upsampled_hw=None)
    assert "heatmap is 32x32, L has 64x64" in variant_disagreements(literal_wrong, spec)
