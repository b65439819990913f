"""Train a ConvNeXtPose stand-in on procedurally drawn people, on the CPU.

    python training/train_standin.py --variant XS --steps 1000 --out training/standin_xs

The loss is the paper's: L1 between soft-argmax coordinates and the targets (x, y in heatmap
pixels, z in depth bins), over the joints that fall inside the heatmap volume. AdamW with the
released optimizer's settings (lr 1e-3, betas 0.9/0.999, weight decay 0.1), a linear warm-up and a
cosine decay, batch norm in training mode, a fixed seed. Samples stream from worker processes,
each with its own seeded generator, so no two batches repeat.

Writes OUT.safetensors (fp16 weights, BatchNorm statistics in fp32: the stem's running variance
does not fit in half precision), OUT.loss.csv and OUT.loss.png, and records the command, seed,
steps, wall time, final loss and the mean training pose (the baseline) in the file's header.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import draw_sample, random_background

from converter.checkpoints.canonical import (
    CheckpointMetadata,
    check_against_model,
    read_evidence,
    weights_digest,
)
from converter.core.model import build_model
from converter.core.variants import VariantSpec, get_variant

BACKGROUNDS_PER_WORKER = 48


class DrawnPeople(IterableDataset):
    def __init__(self, spec: VariantSpec, seed: int) -> None:
        self.spec, self.seed = spec, seed

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, worker]))
        backgrounds = [random_background(rng) for _ in range(BACKGROUNDS_PER_WORKER)]
        while True:
            sample = draw_sample(rng, backgrounds, self.spec)
            if sample is None:
                continue
            root_relative = sample.joints_cam - sample.joints_cam[0]
            yield sample.image, sample.target, sample.valid, root_relative.astype(np.float32)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def plot_loss(rows: list[dict], path: Path) -> None:
    """The loss curve (log scale) drawn with OpenCV: no plotting library needed."""
    width, height, margin = 900, 500, 60
    image = np.full((height, width, 3), 255, np.uint8)
    steps = np.array([r["step"] for r in rows], float)
    losses = np.log10(np.array([r["loss"] for r in rows], float))
    low, high = math.floor(losses.min() * 2) / 2, math.ceil(losses.max() * 2) / 2

    def xy(step: float, log_loss: float) -> tuple[int, int]:
        x = margin + (step / max(steps.max(), 1)) * (width - 2 * margin)
        y = height - margin - (log_loss - low) / max(high - low, 1e-9) * (height - 2 * margin)
        return int(x), int(y)

    for tick in np.arange(low, high + 1e-9, 0.5):
        y = xy(0, tick)[1]
        cv2.line(image, (margin, y), (width - margin, y), (225, 225, 225), 1)
        cv2.putText(image, f"{10**tick:.2g}", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1)
    points = np.array([xy(s, v) for s, v in zip(steps, losses, strict=True)], np.int32)
    cv2.polylines(image, [points], False, (180, 90, 30), 2, cv2.LINE_AA)
    cv2.rectangle(image, (margin, margin), (width - margin, height - margin), (0, 0, 0), 1)
    cv2.putText(
        image,
        "L1 loss (heatmap units, log scale) vs step",
        (margin, 35),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        0,
        1,
        cv2.LINE_AA,
    )
    cv2.putText(
        image,
        f"0 .. {int(steps.max())} steps",
        (width - 260, height - 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        0,
        1,
        cv2.LINE_AA,
    )
    cv2.imwrite(str(path), image)


def standin_metadata(spec: VariantSpec, state: dict, source_name: str) -> dict[str, str]:
    return CheckpointMetadata(
        variant=spec.name, depths=spec.depths, dims=spec.dims, head_width=spec.head_width,
        depth_dim=spec.depth_dim, joint_num=spec.joint_num, heatmap_hw=spec.heatmap_hw,
        upsample=spec.upsample, head_naming="official", epoch=None, source_name=source_name,
        source_sha256="", source_size=0, weights_sha256=weights_digest(state), keys_renamed=0,
        prefixes_stripped=(), container="none", weights="trained",
        evidence=read_evidence(state).describe(),
    ).to_strings()  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="XS")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("training/standin_xs"))
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    spec = get_variant(args.variant)
    # channels_last: the depthwise 7x7 convs train ~1.5x faster on CPU in this layout.
    model = build_model(spec).train().to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},  # biases and BatchNorm affine: no decay
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999))
    loader = DataLoader(
        DrawnPeople(spec, args.seed), batch_size=args.batch, num_workers=args.workers,
        prefetch_factor=4 if args.workers else None, persistent_workers=bool(args.workers),
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    pose_sum = np.zeros((spec.joint_num, 3))
    poses = 0
    running = None
    started = time.perf_counter()
    for step, (images, targets, valid, root_relative) in enumerate(loader):
        if step >= args.steps:
            break
        lr = learning_rate(step, args.steps, args.lr, args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        coords = model(images.contiguous(memory_format=torch.channels_last))
        mask = valid[..., None]
        loss = ((coords - targets).abs() * mask).sum() / (mask.sum() * 3).clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        pose_sum += root_relative.double().sum(0).numpy()
        poses += root_relative.shape[0]
        value = float(loss)
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % args.log_every == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - started
            rows.append({"step": step, "loss": value, "smoothed": running, "lr": lr, "s": elapsed})
            print(f"step {step:6d} loss {value:.4f} smoothed {running:.4f} lr {lr:.2e} "
                  f"{elapsed:7.0f} s", flush=True)  # fmt: skip
    wall = time.perf_counter() - started

    model.eval()
    state = check_against_model({k: v.contiguous() for k, v in model.state_dict().items()}, spec)
    stored = {
        k: (v.float() if ("running_" in k or not v.is_floating_point()) else v.half())
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    # The digest describes the stored (rounded) weights: that is what every later load sees.
    loaded = {k: v.float() if v.is_floating_point() else v for k, v in stored.items()}
    metadata = standin_metadata(spec, loaded, f"{args.out.name}.safetensors")
    given = sys.argv[1:] if argv is None else argv
    metadata["training"] = json.dumps(
        {
            "command": "python training/train_standin.py " + shlex.join(given),
            "seed": args.seed, "steps": args.steps, "batch": args.batch, "lr": args.lr,
            "weight_decay": args.weight_decay, "warmup": args.warmup,
            "wall_s": round(wall, 1), "threads": args.threads, "workers": args.workers,
            "final_loss_smoothed": round(running or float("nan"), 5),
            "torch": torch.__version__,
        }
    )  # fmt: skip
    metadata["mean_training_pose_mm"] = json.dumps(np.round(pose_sum / max(poses, 1), 2).tolist())
    save_file(stored, str(args.out.with_suffix(".safetensors")), metadata=metadata)
    with args.out.with_suffix(".loss.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_loss(rows, args.out.with_suffix(".loss.png"))
    print(f"wrote {args.out.with_suffix('.safetensors')} after {args.steps} steps in {wall:.0f} s")


if __name__ == "__main__":
    main()
