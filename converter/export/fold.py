"""Fold BatchNorms into the convolutions next to them, exactly, before export.

An eval-mode BatchNorm is a per-channel affine map BN(x) = a·x + b with a = γ/√(var + ε) and
b = β − mean·a. Two placements fold without changing the function:

- conv → BN (stem, every block's depthwise conv, every head block's depthwise conv): scale the
  conv's output channels, W' = W·a[out], bias' = (bias − mean)·a + β.
- BN → conv when the conv has no padding (the three 2×2 stride-2 downsampling convs): every tap
  of the conv reads a BN output of a real pixel, so conv(a·x + b) = conv with W' = W·a[in] and
  bias' = bias + Σ W·b. With padding the border taps would read BN(0) = b instead of 0, so a padded
  conv is never folded this way (the backbone's final norm before the padded head conv stays).

The exporters fold conv → BN themselves; BN → conv they leave as a separate BatchNormalization
node (onnxruntime only fuses a BN that follows a conv). For fp16 folding matters beyond speed: the
stem BN's running variance (the input is not divided by 255) exceeds the fp16 range, so an unfolded
half-precision stem BN turns into inf and the pose into noise. The arithmetic runs in float64 and
is cast once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..core.model import ConvNeXtPose


@dataclass(frozen=True)
class FoldReport:
    into_previous_conv: tuple[str, ...]  # conv -> BN folded: the BN's module name
    into_next_conv: tuple[str, ...]  # BN -> unpadded conv folded: the BN's module name

    @property
    def count(self) -> int:
        return len(self.into_previous_conv) + len(self.into_next_conv)


def _affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) of BN(x) = a·x + b, in float64."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    mean = norm.running_mean.double()
    var = norm.running_var.double()
    gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(mean)
    beta = norm.bias.double() if norm.bias is not None else torch.zeros_like(mean)
    a = gamma / torch.sqrt(var + norm.eps)
    return a, beta - mean * a


def _conv_like(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    folded = copy.deepcopy(conv)
    dtype = conv.weight.dtype
    folded.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    folded.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return folded


def _conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is None:
        return torch.zeros(conv.out_channels, dtype=torch.float64)
    return conv.bias.double()


def fold_into_previous_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing norm(conv(x)) (valid for any padding, stride and groups)."""
    a, b = _affine(norm)
    weight = conv.weight.double() * a.view(-1, 1, 1, 1)
    return _conv_like(conv, weight, _conv_bias(conv) * a + b)


def fold_into_next_conv(norm: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """A conv computing conv(norm(x)); the conv must be unpadded and ungrouped."""
    padding = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,)
    if any(int(p) != 0 for p in padding) or conv.groups != 1:
        raise ValueError("only an unpadded, ungrouped conv can absorb the BatchNorm before it")
    a, b = _affine(norm)
    weight = conv.weight.double()
    bias = _conv_bias(conv) + (weight * b.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    return _conv_like(conv, weight * a.view(1, -1, 1, 1), bias)


def fold_batchnorms(model: ConvNeXtPose) -> tuple[ConvNeXtPose, FoldReport]:
    """An eval-mode copy of model with every exactly foldable BatchNorm folded into its conv.

    The input model is left untouched; the copy has nn.Identity where each folded BN was.
    """
    folded = copy.deepcopy(model).eval()
    previous: list[str] = []
    following: list[str] = []
    with torch.no_grad():
        downs = folded.backbone.downsample_layers
        stem_conv, stem_norm = downs[0][0], downs[0][1]
        downs[0][0] = fold_into_previous_conv(stem_conv, stem_norm)
        downs[0][1] = nn.Identity()
        previous.append("backbone.downsample_layers.0.1")
        for i in range(1, len(downs)):
            norm, conv = downs[i][0], downs[i][1]
            downs[i][1] = fold_into_next_conv(norm, conv)
            downs[i][0] = nn.Identity()
            following.append(f"backbone.downsample_layers.{i}.0")
        blocks = [
            (f"backbone.stages.{s}.{b}", block)
            for s, stage in enumerate(folded.backbone.stages)
            for b, block in enumerate(stage)
        ]
        blocks += [
            (f"head.{name}", getattr(folded.head, name))
            for name in ("deconv_layers_1", "deconv_layers_2", "deconv_layers_3")
        ]
        for name, block in blocks:
            block.dwconv = fold_into_previous_conv(block.dwconv, block.norm)
            block.norm = nn.Identity()
            previous.append(f"{name}.norm")
    return folded, FoldReport(tuple(previous), tuple(following))
