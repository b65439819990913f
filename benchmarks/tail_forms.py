"""Other exact forms of the rewritten head's tail (M, L), timed against the shipped rewrite.

The tail is what follows the last head block: the final conv at 32x32, the x2 upsampling of its
J*D channels, the softmax over each joint's D*H*W cells and the moments. Forms compared, each
exported with the TorchScript exporter and run by onnxruntime (CPU, batch 1):

- literal: the checkpoint's own graph (no rewrite);
- shipped: the default rewrite (converter.export.rewrite);
- channels-last: the final conv as a MatMul into a (J, h*w, D) layout with the bias as an extra
  input column, the per-joint max of the 32x32 logits subtracted there (exact: the upsampled
  values are convex combinations of them, so the max bounds them and the softmax does not
  change), onnxruntime's channels-last bilinear Resize (its transpose optimizer moves the
  permutes through it), then Exp and one MatMul for the per-bin mass and moments: no NCHWc
  reorder of the volume and no softmax normalisation pass;
- split G: the final conv split into G joint groups, each group upsampled, softmaxed and reduced
  on its own (pieces small enough for the L2 cache).

Every form is checked against the float64 reference (coords error, heatmap units) before it is
timed; timing alternates blocks of runs per graph (rounds), medians and ratios to the literal
graph; then onnxruntime's profiler splits literal, shipped and channels-last by stage.

    python benchmarks/tail_forms.py --variant M --rounds 20 --out /tmp/tails
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rewrites import print_stages, stage_profile  # noqa: E402  (the sibling script)

from cnp_convert.checkpoints.canonical import build_loaded_model, random_checkpoint  # noqa: E402
from cnp_convert.core.model import ConvNeXtPose  # noqa: E402
from cnp_convert.core.variants import VariantSpec, get_variant  # noqa: E402
from cnp_convert.export.exporter import trace_to_onnx  # noqa: E402
from cnp_convert.export.fold import fold_batchnorms  # noqa: E402
from cnp_convert.export.rewrite import rewrite_head  # noqa: E402
from cnp_convert.h36m.preprocess import normalize_images, seeded_images  # noqa: E402
from cnp_convert.runtimes.sessions import open_onnx_session  # noqa: E402


class HeadFeatures(nn.Module):
    """The head without its final conv and last upsampling (the same submodules, so the graph's
    scope names read /backbone/... and /head/... like the shipped graph's)."""

    def __init__(self, model: ConvNeXtPose) -> None:
        super().__init__()
        self.deconv_layers_1 = model.head.deconv_layers_1
        self.deconv_layers_2 = model.head.deconv_layers_2
        self.deconv_layers_3 = model.head.deconv_layers_3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.deconv_layers_3
        x = self.deconv_layers_2(self.deconv_layers_1(x))
        return last.act(last.pwconv(last.norm(last.dwconv(x))))


class ChannelsLastTail(nn.Module):
    def __init__(self, model: ConvNeXtPose) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, HeadFeatures(model)
        spec = model.spec
        self.j, self.d = spec.joint_num, spec.depth_dim
        self.h, self.w = spec.heatmap_hw
        final = model.head.final_layer
        weight = torch.cat((final.weight[:, :, 0, 0], final.bias[:, None]), 1).detach()
        # (J, K+1, D): column k of joint j's depth bins; the last row is the bias
        self.register_buffer("weight", weight.reshape(self.j, self.d, -1).transpose(1, 2), False)
        # the shipped moments' (H*W, 3) matrix [1, x, y] and bin indices, transposed here
        self.register_buffer("moments", model.soft_argmax.moments.T.contiguous(), False)
        self.register_buffer("bins", model.soft_argmax.index_z.clone(), False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.head(self.backbone(image))
        j, d, h, w = self.j, self.d, self.h, self.w
        pixels = x.permute(0, 2, 3, 1).reshape(-1, 1, (h // 2) * (w // 2), x.shape[1])
        pixels = torch.cat((pixels, torch.ones_like(pixels[..., :1])), 3)
        logits = torch.matmul(pixels, self.weight).reshape(-1, j, (h // 2) * (w // 2) * d)
        logits = logits - logits.amax(2, keepdim=True)
        low = logits.reshape(-1, h // 2, w // 2, d).permute(0, 3, 1, 2)
        up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)
        weights = torch.exp(up.permute(0, 2, 3, 1)).reshape(-1, j, h * w, d)
        per_bin = torch.matmul(self.moments, weights)  # (N, J, 3, D)
        mass = per_bin[:, :, 0]
        total = mass.sum(2)
        x_ = per_bin[:, :, 1].sum(2) / total
        y_ = per_bin[:, :, 2].sum(2) / total
        z_ = (mass * self.bins).sum(2) / total
        return torch.stack((x_, y_, z_), 2)


class SplitTail(nn.Module):
    def __init__(self, model: ConvNeXtPose, groups: int) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, HeadFeatures(model)
        spec = model.spec
        self.j, self.d = spec.joint_num, spec.depth_dim
        self.h, self.w = spec.heatmap_hw
        if self.j % groups:
            raise ValueError(f"{groups} groups do not divide {self.j} joints")
        final = model.head.final_layer
        self.final_layer = nn.ModuleList()  # named so, it profiles as the final conv
        per = self.j // groups * self.d
        for g in range(groups):
            conv = nn.Conv2d(final.in_channels, per, 1)
            conv.weight.data = final.weight.data[g * per : (g + 1) * per].clone()
            conv.bias.data = final.bias.data[g * per : (g + 1) * per].clone()
            self.final_layer.append(conv)
        self.register_buffer("moments", model.soft_argmax.moments.clone(), False)
        self.register_buffer("bins", model.soft_argmax.index_z.clone(), False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.head(self.backbone(image))
        d, h, w = self.d, self.h, self.w
        parts = []
        for conv in self.final_layer:
            up = F.interpolate(conv(x), scale_factor=2, mode="bilinear", align_corners=True)
            joints = up.shape[1] // d
            prob = torch.softmax(up.reshape(-1, joints, d * h * w), 2)
            parts.append(torch.matmul(prob.reshape(-1, joints, d, h * w), self.moments))
        per_bin = torch.cat(parts, 1)  # (N, J, D, 3)
        totals = per_bin.sum(2)
        z = (per_bin[..., 0] * self.bins).sum(2, keepdim=True)
        return torch.cat((totals[..., 1:], z), 2) / totals[..., :1]  # as the shipped moments


def export(module: nn.Module, path: Path, spec: VariantSpec) -> None:
    """The TorchScript export the tool itself uses (no verdict: the forms are checked below)."""
    onnx.save(trace_to_onnx(module.eval(), spec, ("coords",), "dynamic", 18, "torchscript"), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="M", choices=["M", "L"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--groups", type=int, nargs="+", default=[3, 9])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    spec = get_variant(args.variant)
    model = build_loaded_model(random_checkpoint(spec, seed=0))
    shipped, _ = rewrite_head(model)
    shipped, _ = fold_batchnorms(shipped)
    literal, _ = fold_batchnorms(model)
    forms: dict[str, nn.Module] = {
        "literal": literal,
        "shipped": shipped,
        "channels-last": ChannelsLastTail(shipped),
    }
    forms.update({f"split {g}": SplitTail(shipped, g) for g in args.groups})
    images = normalize_images(seeded_images(4, 7, spec.input_hw), spec)
    with torch.no_grad():
        reference = model.double()(torch.from_numpy(images).double()).numpy()
    paths, sessions = {}, {}
    print(f"{spec.name}: coords error against float64 (heatmap units), onnxruntime fp32")
    for label, module in forms.items():
        paths[label] = args.out / f"{spec.name}_{label.replace(' ', '_')}.onnx"
        export(module, paths[label], spec)
        sessions[label] = open_onnx_session(paths[label], "cpu", args.threads, spinning=False)
        coords = np.concatenate([sessions[label].run(im[None])["coords"] for im in images])
        print(f"  {label:14s} {np.abs(coords - reference).max():.2e}")
    image = images[:1]
    medians: dict[str, list[float]] = {label: [] for label in sessions}
    ratios: dict[str, list[float]] = {label: [] for label in sessions}
    order = list(sessions)
    shuffle = random.Random(0)
    for _ in range(args.rounds):
        shuffle.shuffle(order)
        this_round = {}
        for label in order:
            for _ in range(2):
                sessions[label].run(image)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                sessions[label].run(image)
                times.append(time.perf_counter() - started)
            this_round[label] = statistics.median(times)
            medians[label].append(this_round[label])
        for label in sessions:
            ratios[label].append(this_round[label] / this_round["literal"])
    print(f"\n| form | median ms | vs literal (median of {args.rounds} rounds) | quartiles |")
    print("|---|---|---|---|")
    for label in sessions:
        values = ratios[label] * (1 if len(ratios[label]) > 1 else 2)  # quartiles need two
        low, _, high = statistics.quantiles(values, n=4)
        print(
            f"| {label} | {1000 * statistics.median(medians[label]):.2f} | "
            f"{statistics.median(ratios[label]):.3f}x | {low:.3f}-{high:.3f} |"
        )
    chosen = {label: paths[label] for label in ("literal", "shipped", "channels-last")}
    print_stages(spec.name, stage_profile(chosen, image, args.threads))


if __name__ == "__main__":
    main()
