"""Exact rewrites of the head: the same function as the reference model, with less work.

- final conv before the last upsampling (variants whose last head block upsamples: M, L). The
  head ends ReLU -> bilinear x2 (align_corners) -> 1x1 conv. Every upsampled pixel is a convex
  combination of input pixels (its bilinear weights sum to 1) and a 1x1 conv with bias is the same
  affine map at every pixel, so conv(up(x)) = up(conv(x)) in real arithmetic. Run at 32x32 the
  conv needs a quarter of its MACs (L: 2.42 of 4.26 GMACs -> 0.60); the upsampling then moves
  J*D = 1,152 channels instead of 512, a few million additions.
- soft-argmax by moments. The reference sums the whole J x D x H x W probability volume three
  times (once per axis). Here the softmax output is read once, by a MatMul with the (H*W, 3)
  matrix [1, x, y]: per depth bin its mass and its x and y moments, from which z, x and y are
  small sums. The same sums regrouped, one pass over the 262,144 cells per joint instead of
  three (measured: marginals over two passes were slower). The moments are divided by the
  summed mass, which is 1 in real arithmetic: in fp32 the softmax's own normalising sum (over
  262,144 cells) carries a rounding error common to every probability, which the reference's
  E[x] = sum(p * x) passes on in full and the ratio cancels (fp32 against float64 on spread
  64^3 logits: 9.9e-4 heatmap units literal, 1.5e-5 with the division).

Both are judged by the same fp32 verdict as the literal graph (converter.verdicts.judge): the
reference stays the unmodified model in float64. Parameter names do not change, so BatchNorm
folding and the precision recipes apply to the rewritten model as they do to the original.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..core.choices import FINAL_CONV_BEFORE_UPSAMPLE, REWRITES, SOFT_ARGMAX_MOMENTS
from ..core.model import ConvNeXtPose, Head, MomentSoftArgmax


class ReorderedHead(nn.Module):
    """The head with its final 1x1 conv moved before the last block's x2 upsampling."""

    def __init__(self, head: Head) -> None:
        super().__init__()
        # The same submodules under the same names: state dicts and folding are unchanged.
        self.deconv_layers_1 = head.deconv_layers_1
        self.deconv_layers_2 = head.deconv_layers_2
        self.deconv_layers_3 = head.deconv_layers_3
        self.final_layer = head.final_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.deconv_layers_3
        x = self.deconv_layers_2(self.deconv_layers_1(x))
        x = last.act(last.pwconv(last.norm(last.dwconv(x))))
        return last.upsample1(self.final_layer(x))


@dataclass(frozen=True)
class RewriteReport:
    applied: tuple[str, ...]  # names from REWRITES, in the order they were applied
    skipped: tuple[str, ...]  # asked for but not applicable to this variant

    def to_dict(self) -> dict[str, object]:
        return {"applied": list(self.applied), "skipped": list(self.skipped)}


NO_REWRITES = RewriteReport((), ())


def rewrite_head(
    model: ConvNeXtPose, rewrites: tuple[str, ...] = REWRITES
) -> tuple[ConvNeXtPose, RewriteReport]:
    """An eval-mode copy of model with the asked rewrites that apply to its variant.

    The input model is left untouched.
    """
    unknown = [name for name in rewrites if name not in REWRITES]
    if unknown:
        raise ValueError(f"unknown rewrites {unknown}; known: {list(REWRITES)}")
    rewritten = copy.deepcopy(model).eval()
    applied: list[str] = []
    skipped: list[str] = []
    if FINAL_CONV_BEFORE_UPSAMPLE in rewrites:
        if model.spec.upsample[2]:
            rewritten.head = ReorderedHead(rewritten.head)
            applied.append(FINAL_CONV_BEFORE_UPSAMPLE)
        else:  # XS, S: no upsampling follows the final conv, nothing to move
            skipped.append(FINAL_CONV_BEFORE_UPSAMPLE)
    if SOFT_ARGMAX_MOMENTS in rewrites:
        rewritten.soft_argmax = MomentSoftArgmax(rewritten.soft_argmax)
        applied.append(SOFT_ARGMAX_MOMENTS)
    return rewritten, RewriteReport(tuple(applied), tuple(skipped))
