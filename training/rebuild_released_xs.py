"""Rebuild the authors' ConvNeXtPose-XS (snapshot_68) from its public raw storages.

    python training/rebuild_released_xs.py [--source ../shared/data/released_xs] [--compare]

The source folder holds 585 of the 596 storages of ``ConvNeXtPose_XS.tar`` (its README gives
the storage-to-key rule). This script

1. checks every file against ``SHA256SUMS`` (a changed byte stops it);
2. maps storage N to a tensor: 0-193 are the network's ``state_dict()`` entries in order,
   194-595 are (step, exp_avg, exp_avg_sq) per parameter in ``named_parameters()`` order, and
   every present file must have exactly its tensor's byte size;
3. restores the 183 present network tensors and the 402 optimizer storages bit for bit;
4. recovers the 11 missing tensors (the stem conv, the stem BatchNorm, the BatchNorm before the
   first downsampling conv) by the recipe chosen below, and
5. writes ``converter/checkpoints/released_xs.safetensors`` (the fp32 network, provenance in
   the header) and ``released_xs_optimizer.safetensors`` (the authors' AdamW moments).

Two recoveries are built and compared on the real photos (``--compare`` prints the table):

- ``statistics``: the stem conv starts from the trained XS stand-in's; every missing value is
  then fitted so that the batch statistics of the 20 recorded BatchNorms that follow match the
  authors' running statistics on augmented real crops (the labels the released file does hold);
- ``pose``: from there, the missing values alone are trained with the paper's pose loss (L1 on
  soft-argmax coordinates) on the drawn-people stream, everything else frozen, with the same
  statistics term as a constraint.

Both are deterministic (seeded, one torch thread): the same command writes the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training"))

from cnp_convert.checkpoints.canonical import (  # noqa: E402
    CheckpointMetadata,
    check_against_model,
    read_evidence,
    weights_digest,
)
from cnp_convert.core.model import ConvNeXtPose, build_model  # noqa: E402
from cnp_convert.core.variants import get_variant  # noqa: E402
from cnp_convert.h36m.photos import random_photo_inputs  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "released_xs"
OUT_DIR = ROOT / "converter" / "checkpoints"
NETWORK_FILE = OUT_DIR / "released_xs.safetensors"
OPTIMIZER_FILE = OUT_DIR / "released_xs_optimizer.safetensors"
STANDIN_FILE = ROOT / "training" / "standin_xs_stem.safetensors"

SOURCE_REPOSITORY = "github.com/EstebanCabreraArbizu/ConvNeXtPose"
SOURCE_COMMIT = "87b6e7f"
SOURCE_PATH = "demo/ConvNeXtPose_XS/snapshot_68.pth/data/"
EPOCH = 68
ATTRIBUTION = (
    "ConvNeXtPose-XS weights by the ConvNeXtPose authors (Korea University Media Lab), "
    "MIT licence, Copyright (c) 2023 Korea University Media Lab"
)
MISSING = (
    "backbone.downsample_layers.0.0.weight",
    "backbone.downsample_layers.0.0.bias",
    "backbone.downsample_layers.0.1.weight",
    "backbone.downsample_layers.0.1.bias",
    "backbone.downsample_layers.0.1.running_mean",
    "backbone.downsample_layers.0.1.running_var",
    "backbone.downsample_layers.0.1.num_batches_tracked",
    "backbone.downsample_layers.1.0.weight",
    "backbone.downsample_layers.1.0.bias",
    "backbone.downsample_layers.1.0.running_mean",
    "backbone.downsample_layers.1.0.running_var",
)
NETWORK_STORAGES = 194
SEED = 68


class SourceError(RuntimeError):
    pass


# --- 1-3: the storages, checked and placed ------------------------------------------------


def check_sums(source: Path) -> dict[str, str]:
    """Every file SHA256SUMS lists, hashed; returns name -> digest."""
    listed = {}
    for line in (source / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    for name, digest in listed.items():
        path = source / name if (source / name).is_file() else source / "storages" / name
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            raise SourceError(f"{path}: sha256 {actual[:16]}… differs from SHA256SUMS")
    return listed


@dataclass(frozen=True)
class Storages:
    network: dict[str, torch.Tensor]  # the present network tensors, canonical names
    optimizer: dict[str, torch.Tensor]  # "<param>.step|exp_avg|exp_avg_sq"
    storage_of: dict[str, int]  # tensor name -> storage number


def storage_layout(model: ConvNeXtPose) -> list[tuple[str, torch.Size, torch.dtype]]:
    """(name, shape, dtype) of storage 0, 1, … in the order the pickler met them."""
    layout = [(k, v.shape, v.dtype) for k, v in model.state_dict().items()]
    for name, param in model.named_parameters():
        layout.append((f"{name}.step", torch.Size([]), torch.float32))
        layout.append((f"{name}.exp_avg", param.shape, torch.float32))
        layout.append((f"{name}.exp_avg_sq", param.shape, torch.float32))
    return layout


def read_storages(source: Path) -> Storages:
    model = build_model(get_variant("XS"))
    layout = storage_layout(model)
    network, optimizer, storage_of = {}, {}, {}
    for number, (name, shape, dtype) in enumerate(layout):
        path = source / "storages" / str(number)
        storage_of[name] = number
        if not path.is_file():
            if name not in MISSING:
                raise SourceError(f"{path}: storage of {name} is missing")
            continue
        raw = path.read_bytes()
        expected = shape.numel() * torch.empty((), dtype=dtype).element_size()
        if len(raw) != expected:
            raise SourceError(f"{path}: {len(raw)} bytes, {name} {tuple(shape)} needs {expected}")
        numpy_dtype = np.int64 if dtype == torch.int64 else np.float32
        tensor = torch.from_numpy(
            np.frombuffer(raw, dtype=f"<{np.dtype(numpy_dtype).str[1:]}").copy()
        )
        tensor = tensor.reshape(shape)
        (network if number < NETWORK_STORAGES else optimizer)[name] = tensor
    if len(layout) != 596 or len(network) != 183 or len(optimizer) != 402:
        raise SourceError(f"{source}: {len(network)} network / {len(optimizer)} optimizer storages")
    return Storages(network, optimizer, storage_of)


# --- 4: the missing values ------------------------------------------------------------------

STEM_CONV, STEM_BN, DOWN1_BN = (
    "backbone.downsample_layers.0.0",
    "backbone.downsample_layers.0.1",
    "backbone.downsample_layers.1.0",
)
FITTED_BATCHNORMS = (STEM_BN, DOWN1_BN)  # their running statistics are lost: set from crops
FLIP_PAIRS = ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13))


def fit_crops(count: int, seed: int) -> torch.Tensor:
    """Augmented real crops for the fit, drawn from their own seed (never the verdict's list)."""
    return torch.from_numpy(random_photo_inputs(get_variant("XS"), count, seed))


class RecordedStatistics:
    """Batch statistics at the input of every BatchNorm whose running statistics are the
    authors', against those statistics, in the units the next layer sees: the mean offset over
    sqrt(var + eps) and the log of the ratio of (var + eps) to the recorded (var + eps)."""

    def __init__(self, model: ConvNeXtPose) -> None:
        self.layers = [
            (name, module)
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.BatchNorm2d) and name not in FITTED_BATCHNORMS
        ]
        self.seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.handles = [
            module.register_forward_pre_hook(self._hook(name)) for name, module in self.layers
        ]

    def _hook(self, name: str):
        def record(_module, inputs):
            x = inputs[0]
            self.seen[name] = (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False))

        return record

    def offsets(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(name, mean offset, variance change) per recorded BatchNorm of the last forward."""
        rows = []
        for name, module in self.layers:
            mean, var = self.seen[name]
            scale = module.running_var + module.eps
            rows.append(
                (
                    name,
                    (mean - module.running_mean) / scale.sqrt(),
                    torch.log((var + module.eps) / scale),
                )
            )
        return rows

    def loss(self) -> torch.Tensor:
        terms = [(m**2).mean() + (v**2).mean() for _, m, v in self.offsets()]
        return torch.stack(terms).mean()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def released_model(network: dict[str, torch.Tensor]) -> ConvNeXtPose:
    """The XS model with the authors' tensors and the stand-in's stem conv as a starting point."""
    model = build_model(get_variant("XS"))
    state = model.state_dict()
    state.update(network)
    stem = load_stem_start()
    state.update(stem)
    for name in FITTED_BATCHNORMS:
        state[f"{name}.weight"] = torch.ones_like(state[f"{name}.weight"])
        state[f"{name}.bias"] = torch.zeros_like(state[f"{name}.bias"])
    model.load_state_dict(state)
    return model


def load_stem_start() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(STANDIN_FILE))


def missing_parameters(model: ConvNeXtPose) -> list[torch.nn.Parameter]:
    modules = dict(model.named_modules())
    return [p for name in (STEM_CONV, *FITTED_BATCHNORMS) for p in modules[name].parameters()]


def missing_values_optimizer(model: ConvNeXtPose, lr: float) -> torch.optim.Adam:
    """Adam over the lost values only; every authors' tensor is frozen."""
    params = missing_parameters(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return torch.optim.Adam(params, lr=lr)


def cosine_rate(optimizer: torch.optim.Optimizer, peak: float, step: int, steps: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = peak * 0.5 * (1 + np.cos(np.pi * step / steps))


def use_batch_statistics(model: ConvNeXtPose) -> None:
    """Recorded BatchNorms frozen in eval mode; the two lost ones normalise by the batch."""
    model.eval()
    modules = dict(model.named_modules())
    for name in FITTED_BATCHNORMS:
        modules[name].train()


@torch.no_grad()
def settle_statistics(model: ConvNeXtPose, crops: torch.Tensor, batch: int) -> None:
    """The lost running statistics: the average batch statistics over every fit crop."""
    modules = dict(model.named_modules())
    for name in FITTED_BATCHNORMS:
        modules[name].reset_running_stats()
        modules[name].momentum = None  # cumulative average
    use_batch_statistics(model)
    for start in range(0, len(crops), batch):
        model(crops[start : start + batch])
    for name in FITTED_BATCHNORMS:
        modules[name].momentum = 0.1
        modules[name].num_batches_tracked.fill_(1_346_328)
    model.eval()


@torch.no_grad()
def closed_form_start(model: ConvNeXtPose, crops: torch.Tensor) -> None:
    """Affine values of the two lost BatchNorms that put the next recorded BatchNorm on its
    statistics, solved directly (the gradient fit then refines every missing value).

    The stem's BatchNorm feeds a depthwise conv, so each channel's scale and shift follow from
    that channel alone: var = g^2 var(dw * u), mean = g mean(dw * u) + b mean(dw * 1) + bias.
    The second feeds a full 2x2 conv and a depthwise one: one common scale matches the average
    variance, then the shifts solve the recorded means by least squares.
    """
    modules = dict(model.named_modules())
    stem_bn, block0 = modules[STEM_BN], model.backbone.stages[0][0]
    features = model.backbone.downsample_layers[0][0](crops)
    u = (features - features.mean(dim=(0, 2, 3), keepdim=True)) / features.std(
        dim=(0, 2, 3), keepdim=True
    )
    stem_bn.running_mean.copy_(features.mean(dim=(0, 2, 3)))
    stem_bn.running_var.copy_(features.var(dim=(0, 2, 3)))
    dw = block0.dwconv
    response = torch.nn.functional.conv2d(u, dw.weight, None, 1, dw.padding, 1, dw.groups)
    ones = torch.nn.functional.conv2d(
        torch.ones_like(u[:1]), dw.weight, None, 1, dw.padding, 1, dw.groups
    )
    target = block0.norm
    gain = (target.running_var / response.var(dim=(0, 2, 3))).sqrt()
    stem_bn.weight.copy_(gain)
    stem_bn.bias.copy_(
        (target.running_mean - dw.bias - gain * response.mean(dim=(0, 2, 3)))
        / ones.mean(dim=(0, 2, 3))
    )
    stem_bn.eval()
    x = model.backbone.stages[0](stem_bn(features))
    down_bn, down_conv = modules[DOWN1_BN], model.backbone.downsample_layers[1][1]
    down_bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
    down_bn.running_var.copy_(x.var(dim=(0, 2, 3)))
    block1 = model.backbone.stages[1][0]
    xhat = (x - down_bn.running_mean[None, :, None, None]) / (
        down_bn.running_var[None, :, None, None] + down_bn.eps
    ).sqrt()

    def next_input(gain: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        y = down_conv(xhat * gain[None, :, None, None] + shift[None, :, None, None])
        return block1.dwconv(y)

    zero = torch.zeros(xhat.shape[1])
    unit = next_input(torch.ones_like(zero), zero)
    scale = (block1.norm.running_var.mean() / unit.var(dim=(0, 2, 3)).mean()).sqrt()
    gain = torch.full_like(zero, float(scale))
    base = next_input(gain, zero).mean(dim=(0, 2, 3))
    columns = []
    for channel in range(len(zero)):  # the mean is affine in the shifts: one column each
        shift = zero.clone()
        shift[channel] = 1.0
        columns.append(
            next_input(gain, shift)[:1].mean(dim=(0, 2, 3))
            - next_input(gain, zero)[:1].mean(dim=(0, 2, 3))
        )
    design = torch.stack(columns, dim=1).double()
    shift = torch.linalg.lstsq(design, (block1.norm.running_mean - base).double()[:, None]).solution
    down_bn.weight.copy_(gain)
    down_bn.bias.copy_(shift[:, 0].float())


def fit_statistics(model: ConvNeXtPose, crops: torch.Tensor, steps: int, batch: int) -> list[float]:
    """Recovery (a): the missing values fitted to the authors' recorded statistics."""
    closed_form_start(model, crops)
    generator = torch.Generator().manual_seed(SEED)
    optimizer = missing_values_optimizer(model, 3e-3)
    statistics = RecordedStatistics(model)
    use_batch_statistics(model)
    history = []
    for step in range(steps):
        cosine_rate(optimizer, 3e-3, step, steps)
        index = torch.randperm(len(crops), generator=generator)[:batch]
        model(crops[index])
        loss = statistics.loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        if step % 25 == 0 or step == steps - 1:
            print(f"statistics step {step:4d} loss {float(loss):.4f}", flush=True)
    statistics.close()
    settle_statistics(model, crops, batch)
    return history


def train_pose(
    model: ConvNeXtPose, crops: torch.Tensor, steps: int, batch: int, weight: float
) -> list[float]:
    """Recovery (b): from (a), the missing values alone trained with the paper's pose loss on
    the drawn-people stream, the recorded statistics on real crops kept as a constraint."""
    from render import draw_sample, random_background

    spec = get_variant("XS")
    rng = np.random.default_rng(SEED + 2)
    backgrounds = [random_background(rng) for _ in range(32)]
    generator = torch.Generator().manual_seed(SEED + 3)
    optimizer = missing_values_optimizer(model, 3e-4)
    statistics = RecordedStatistics(model)
    history = []
    for step in range(steps):
        cosine_rate(optimizer, 3e-4, step, steps)
        samples = []
        while len(samples) < batch:
            sample = draw_sample(rng, backgrounds, spec)
            if sample is not None:
                samples.append(sample)
        images = torch.from_numpy(np.stack([s.image for s in samples]))
        targets = torch.from_numpy(np.stack([s.target for s in samples]))
        valid = torch.from_numpy(np.stack([s.valid for s in samples]))[..., None]
        use_batch_statistics(model)
        index = torch.randperm(len(crops), generator=generator)[:batch]
        model(crops[index])
        constraint = statistics.loss()
        model.eval()  # the drawn batch through the fixed statistics, as at inference
        coords = model(images)
        pose = ((coords - targets).abs() * valid).sum() / (valid.sum() * 3).clamp(min=1)
        loss = pose + weight * constraint
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(pose.item())
        if step % 25 == 0 or step == steps - 1:
            print(
                f"pose step {step:4d} L1 {pose.item():.4f} statistics {constraint.item():.4f}",
                flush=True,
            )
    statistics.close()
    settle_statistics(model, crops, batch)
    return history


# --- judging a recovery on the real photos ----------------------------------------------------


@dataclass(frozen=True)
class RecoveryScore:
    name: str
    statistics_loss: float  # RecordedStatistics.loss on the verdict's photo crops
    variance_ratio_p5: float  # (var + eps) / recorded (var + eps), all recorded channels
    variance_ratio_p95: float
    flip_mm: float  # mean joint distance between a crop's pose and its mirror's, flipped back
    limb_asymmetry_mm: float  # mean |left - right| 3D limb length


LIMB_PAIRS = (((1, 2), (4, 5)), ((2, 3), (5, 6)), ((14, 15), (11, 12)), ((15, 16), (12, 13)))


@torch.no_grad()
def score_recovery(name: str, model: ConvNeXtPose) -> RecoveryScore:
    from cnp_convert.h36m.photos import photo_crops

    spec = get_variant("XS")
    crops = photo_crops(spec)
    images = torch.from_numpy(crops.images)
    model.eval()
    statistics = RecordedStatistics(model)
    coords = model(images).double().numpy()
    loss = statistics.loss().item()
    ratios = torch.cat([v.exp() for _, _, v in statistics.offsets()]).numpy()
    statistics.close()
    mirrored = model(torch.flip(images, dims=[3])).double().numpy()
    mirrored[..., 0] = spec.heatmap_hw[1] - mirrored[..., 0] - 1
    for a, b in FLIP_PAIRS:
        mirrored[:, [a, b]] = mirrored[:, [b, a]]
    mm = 2000.0 / spec.depth_dim  # the photos' crops: one heatmap unit = 62.5 mm on each axis
    pose, flipped = coords * mm, mirrored * mm
    flip = float(np.linalg.norm(pose - flipped, axis=2).mean())
    asymmetry = []
    for (ra, rb), (la, lb) in LIMB_PAIRS:
        right = np.linalg.norm(pose[:, ra] - pose[:, rb], axis=1)
        left = np.linalg.norm(pose[:, la] - pose[:, lb], axis=1)
        asymmetry.append(np.abs(right - left))
    return RecoveryScore(
        name, loss, float(np.percentile(ratios, 5)), float(np.percentile(ratios, 95)), flip,
        float(np.mean(asymmetry)),
    )  # fmt: skip


# --- 5: the files -----------------------------------------------------------------------------

FIT_CROPS = 256
FIT_BATCH = 16
STATISTICS_STEPS = 150
POSE_STEPS = 100
POSE_CONSTRAINT_WEIGHT = 1.0
RECIPES = ("statistics", "pose")


def recover(storages: Storages, recipe: str) -> tuple[ConvNeXtPose, dict]:
    """The network with its missing values recovered by recipe; returns it and the record."""
    return next((model, record) for name, model, record in recoveries(storages) if name == recipe)


def recoveries(storages: Storages):
    """Yield (recipe, model, record) for each recipe in RECIPES' order; "pose" continues from
    the "statistics" model (the first is yielded before the second is trained)."""
    torch.manual_seed(SEED)
    crops = fit_crops(FIT_CROPS, SEED + 1)
    model = released_model(storages.network)
    record = {
        "fit_crops": f"{FIT_CROPS} augmented crops of the four photos in converter/h36m/photos "
        f"(seed {SEED + 1})",
        "start": "stem conv from the XS stand-in trained on drawn people "
        "(training/standin_xs_stem.safetensors); BatchNorm affine values solved in closed form",
        "statistics_fit": f"{STATISTICS_STEPS} Adam steps, batch {FIT_BATCH}, lr 3e-3 cosine",
    }
    fit_statistics(model, crops, STATISTICS_STEPS, FIT_BATCH)
    yield "statistics", model.eval(), dict(record)
    model = copy.deepcopy(model)
    train_pose(model, crops, POSE_STEPS, FIT_BATCH, POSE_CONSTRAINT_WEIGHT)
    record["pose_fit"] = (
        f"{POSE_STEPS} Adam steps, batch {FIT_BATCH} drawn people (training/render.py) + "
        f"{FIT_BATCH} real crops, L1 pose loss + {POSE_CONSTRAINT_WEIGHT} x statistics"
    )
    yield "pose", model.eval(), record


def network_state(model: ConvNeXtPose, storages: Storages) -> dict[str, torch.Tensor]:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    for name, tensor in storages.network.items():
        if not torch.equal(state[name], tensor):
            raise SourceError(f"{name}: the authors' tensor changed during the recovery")
    return state


_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_deterministic(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path):
    """A safetensors file whose bytes depend only on its contents: the header's keys sorted
    (safetensors' own writer orders the metadata by a per-process hash), tensors by name, the
    header padded with spaces to 8 bytes as the format asks."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    offset, blobs = 0, []
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        blob = tensor.numpy().tobytes()
        header[name] = {
            "dtype": _DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + b"".join(blobs))


def write_files(
    state: dict[str, torch.Tensor],
    storages: Storages,
    record: dict,
    recipe: str,
    sums: dict,
    out_dir: Path = OUT_DIR,
) -> None:
    spec = get_variant("XS")
    stored = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    authors = sorted(k for k in storages.network if not k.endswith("num_batches_tracked"))
    recovered = sorted(k for k in MISSING if not k.endswith("num_batches_tracked"))
    provenance = {
        "weights": ATTRIBUTION,
        "source": f"{SOURCE_REPOSITORY} commit {SOURCE_COMMIT}, {SOURCE_PATH}N "
        "(the unzipped ConvNeXtPose_XS.tar, snapshot_68)",
        "storages_sha256": hashlib.sha256(
            "".join(f"{sums[k]}  {k}\n" for k in sorted(sums)).encode()
        ).hexdigest(),
        "authors_tensors": len(authors),
        "authors_tensor_storages": {k: storages.storage_of[k] for k in authors},
        "recovered_tensors": recovered,
        "recovery": recipe,
        "recovery_record": record,
        "rebuilt_by": "python training/rebuild_released_xs.py",
        "torch": torch.__version__.split("+")[0],
    }
    metadata = CheckpointMetadata(
        variant=spec.name, depths=spec.depths, dims=spec.dims, head_width=spec.head_width,
        depth_dim=spec.depth_dim, joint_num=spec.joint_num, heatmap_hw=spec.heatmap_hw,
        upsample=spec.upsample, head_naming="official", epoch=EPOCH,
        source_name="ConvNeXtPose_XS.tar", source_sha256="", source_size=0,
        weights_sha256=weights_digest(stored), keys_renamed=0, prefixes_stripped=(),
        container="none", weights="trained", evidence=read_evidence(stored).describe(),
    ).to_strings()  # fmt: skip
    metadata["provenance"] = json.dumps(provenance, sort_keys=True)
    check_against_model(stored, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    network, optimizer = out_dir / NETWORK_FILE.name, out_dir / OPTIMIZER_FILE.name
    save_deterministic(stored, metadata, network)
    save_deterministic(
        storages.optimizer, {"provenance": provenance["source"], "weights": ATTRIBUTION}, optimizer
    )
    print(f"wrote {network} and {optimizer}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--recipe", choices=RECIPES, default="statistics")
    parser.add_argument(
        "--out", type=Path, default=OUT_DIR, help="folder to write to (default: the package's)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="build every recipe, print their scores, write none"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # deterministic reductions; the same bytes on every run
    sums = check_sums(args.source)
    storages = read_storages(args.source)
    print(
        f"{args.source}: {len(sums)} files match SHA256SUMS; 183 network + 402 optimizer storages"
    )
    if args.compare:
        start = released_model(storages.network)
        closed_form_start(start, fit_crops(FIT_CROPS, SEED + 1))
        print(score_recovery("closed form only", start.eval()), flush=True)
        for recipe, model, _ in recoveries(storages):
            print(score_recovery(recipe, model), flush=True)
        return
    model, record = recover(storages, args.recipe)
    record["score_on_photo_crops"] = {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in score_recovery(args.recipe, model).__dict__.items()
    }
    write_files(network_state(model, storages), storages, record, args.recipe, sums, args.out)


if __name__ == "__main__":
    main()
