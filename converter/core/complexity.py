"""Parameter counts and convolution multiply-accumulates: from the spec, and on a built model.

MACs count convolutions only (kernel volume x input channels per group x output elements), the
way the paper's profiler reports GFLOPs; BatchNorm, adds, softmax and interpolation are left out,
so figures sit about 1 % below the paper's.

``spec_params``/``spec_conv_macs`` count from the VariantSpec's layer shapes (microseconds; what
``cnp-convert variants`` prints); ``trainable_params``/``conv_macs`` measure a built model, which
the tests hold the spec counts to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .variants import VariantSpec

# The layer shapes of converter.core.model, restated here so the count needs no model.
BACKBONE_PATCH = 4  # the stem: a 4x4 stride-4 conv
DOWNSAMPLE_STRIDE = 2  # between stages: a 2x2 stride-2 conv
MLP_RATIO = 4  # a block's pointwise layers widen to 4 x dim


@dataclass(frozen=True)
class _Conv:
    """One Conv2d of the network: its shape and the size of its output."""

    c_in: int
    c_out: int
    kernel: int
    out_hw: tuple[int, int]
    groups: int = 1
    bias: bool = True

    @property
    def params(self) -> int:
        return self.c_out * (self.c_in // self.groups) * self.kernel**2 + self.c_out * self.bias

    @property
    def macs(self) -> int:
        per_output = self.kernel**2 * self.c_in // self.groups
        return per_output * self.c_out * self.out_hw[0] * self.out_hw[1]


def _layers(spec: VariantSpec) -> tuple[list[_Conv], list[int]]:
    """Every conv of ConvNeXtPose (converter.core.model) and the width of every BatchNorm."""
    convs: list[_Conv] = []
    norms: list[int] = []
    dims, k = spec.dims, spec.backbone_kernel
    hw = (spec.input_hw[0] // BACKBONE_PATCH, spec.input_hw[1] // BACKBONE_PATCH)
    convs.append(_Conv(3, dims[0], BACKBONE_PATCH, hw))  # stem, then its BatchNorm
    norms.append(dims[0])
    for stage, (depth, dim) in enumerate(zip(spec.depths, dims, strict=True)):
        if stage > 0:  # BatchNorm, then the unpadded 2x2 stride-2 conv
            hw = (hw[0] // DOWNSAMPLE_STRIDE, hw[1] // DOWNSAMPLE_STRIDE)
            norms.append(dims[stage - 1])
            convs.append(_Conv(dims[stage - 1], dim, DOWNSAMPLE_STRIDE, hw))
        for _ in range(depth):  # dwconv, BatchNorm, pwconv1, ReLU, pwconv2
            convs.append(_Conv(dim, dim, k, hw, groups=dim))
            norms.append(dim)
            convs.append(_Conv(dim, MLP_RATIO * dim, 1, hw))
            convs.append(_Conv(MLP_RATIO * dim, dim, 1, hw))
    norms.append(dims[3])  # the backbone's last BatchNorm
    width = dims[3]
    for upsample in spec.upsample:  # dwconv, BatchNorm, 1x1 conv, ReLU, optional x2
        convs.append(_Conv(width, width, spec.head_kernel, hw, groups=width))
        norms.append(width)
        convs.append(_Conv(width, spec.head_width, 1, hw))
        width = spec.head_width
        if upsample:
            hw = (hw[0] * 2, hw[1] * 2)
    convs.append(_Conv(width, spec.final_channels, 1, hw))
    return convs, norms


def spec_params(spec: VariantSpec) -> int:
    """Trainable parameters: conv weights and biases, BatchNorm weights and biases."""
    convs, norms = _layers(spec)
    return sum(c.params for c in convs) + 2 * sum(norms)


def spec_conv_macs(spec: VariantSpec) -> int:
    """Multiply-accumulates of every conv for one image of the spec's input size."""
    return sum(c.macs for c in _layers(spec)[0])


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def state_dict_elements(model: nn.Module) -> int:
    """All state-dict elements, BN running statistics included (how some notes count)."""
    return sum(t.numel() for t in model.state_dict().values())


def conv_macs(model: nn.Module, input_hw: tuple[int, int]) -> int:
    """Multiply-accumulates of every Conv2d for one image of size input_hw."""
    total = 0

    def count(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        per_output = kh * kw * module.in_channels // module.groups
        total += per_output * output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, *input_hw))
    finally:
        for hook in hooks:
            hook.remove()
    return total
