"""Parameter counts and convolution multiply-accumulates, measured on a built model.

MACs count convolutions only (kernel volume x input channels per group x output elements), the
way the paper's profiler reports GFLOPs; BatchNorm, adds, softmax and interpolation are left out,
so figures sit about 1 % below the paper's.
"""

from __future__ import annotations

import torch
from torch import nn


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
