"""Deterministic stand-ins for the released ConvNeXtPose checkpoints.

The real files cannot be downloaded here, so tests and the demo fabricate files shaped exactly
like them (facts §2): a torch zip archive holding {'epoch', 'network', 'optimizer'}, network keys
with the DataParallel ``module.`` prefix, the legacy numbered head for M and L, official head names
for XS and S, an AdamW optimizer state, saved to ``snapshot_NN.pth.tar`` and renamed to
``ConvNeXtPose_V.tar`` (M through a buffer, so its archive prefix is ``archive/``).

Random weights are for testing the conversion path (export, simplification, folding,
quantization, the verdicts, file forms, the demo's plumbing), never for poses: they are not a pose
model, and the coordinates they give mean nothing. They only have to make the graph compute
something non-degenerate, so that a conversion bug shows as a difference: heatmap logits finite
and of moderate scale, softmax peaked but not saturated, coordinates that move with the image.

They come from numpy's seeded Generator (stable across torch versions; same seed, same weights)
and are scaled by hand, without running the model (milliseconds, not a float64 calibration pass):
each conv's weights have std gain/sqrt(fan-in), so activations keep their scale (gain sqrt(2)
before a ReLU, 0.3 on residual branches so the deep stages stay near unit variance), BatchNorms
hold running mean 0 / var 1, except the stem's, set from the pixel statistics (0..255 images are
not centred by the normalisation), and the final conv is scaled to give logits of about
_TARGET_LOGIT_STD per joint. tests/checkpoints/test_fabricate.py measures those properties in
float64 on every variant.
"""

from __future__ import annotations

import functools
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..core.model import ConvNeXtPose
from ..core.variants import VariantSpec, get_variant

# Epoch stored in each released file (facts §2.1). M's real value is unknown; 69 is a stand-in.
RELEASE_EPOCH = {"XS": 68, "S": 67, "M": 69, "L": 83}
# Variants whose released head uses the older numbered Sequential names (facts §2.4).
LEGACY_HEAD_VARIANTS = frozenset({"M", "L"})
_NUM_BATCHES_TRACKED = 1_346_328  # the value read from the real XS file (facts §2.3)
# Scale of the random weights (module docstring): heatmap logits with this spread per joint,
# residual branches damped, and the pixel statistics the stem's BatchNorm is set from.
_TARGET_LOGIT_STD = 4.0
_RELU_GAIN = float(np.sqrt(2.0))
_RESIDUAL_GAIN = 0.3
_PIXEL_MEAN = 127.5
_PIXEL_VAR = 255.0**2 / 12.0


def seeded_state_dict(spec: VariantSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """A canonical float32 state dict (ConvNeXtPose names) with seeded random weights."""
    # Tests ask for the same weights often; hand out copies of one build.
    return {k: v.clone() for k, v in _seeded_state_dict(spec, seed).items()}


def _conv_gain(name: str) -> float:
    """Weight std times sqrt(fan-in) that keeps a layer's output at the scale of its input."""
    if name == "head.final_layer.weight":
        return _TARGET_LOGIT_STD
    if ".pwconv1." in name or (name.startswith("head.") and ".pwconv." in name):
        return _RELU_GAIN  # a ReLU follows: it halves the second moment
    if ".pwconv2." in name:
        # The residual branch: each block adds a fraction of its input's variance, so the
        # deepest stage grows by (1 + g^2)^blocks, about 2x for S/M/L's nine blocks.
        return _RESIDUAL_GAIN
    return 1.0


def _stem_statistics(
    weight: np.ndarray, bias: np.ndarray, spec: VariantSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Running mean/var of the stem conv's output on images of 0..255 pixels, by hand.

    The input is not centred (no division by 255 before the per-channel normalisation), so the
    stem's output carries a large constant offset; its BatchNorm removes it, as training would
    have. Pixels are taken as uniform on 0..255: mean 127.5, variance 255^2/12 per channel.
    """
    mean_px = np.asarray(spec.pixel_mean, dtype=np.float64)
    std_px = np.asarray(spec.pixel_std, dtype=np.float64)
    input_mean = (_PIXEL_MEAN - mean_px) / std_px  # per input channel
    input_var = _PIXEL_VAR / std_px**2
    per_channel = weight.sum(axis=(2, 3))  # (out, in)
    running_mean = bias + per_channel @ input_mean
    running_var = (weight**2).sum(axis=(2, 3)) @ input_var
    return running_mean, running_var


@functools.lru_cache(maxsize=8)
def _seeded_state_dict(spec: VariantSpec, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    template = ConvNeXtPose(spec).state_dict()
    values: dict[str, np.ndarray] = {}
    for name, tensor in template.items():
        shape = tuple(tensor.shape)
        if name.endswith("num_batches_tracked"):
            continue
        leaf = name.rsplit(".", 1)[1]
        if tensor.dim() == 4:  # conv weight, scaled by its fan-in
            fan_in = shape[1] * shape[2] * shape[3]
            gain = _conv_gain(name)
            values[name] = rng.normal(0.0, gain / np.sqrt(fan_in), size=shape)
        elif leaf == "weight":  # BN scale
            values[name] = 1.0 + 0.1 * rng.standard_normal(shape)
        elif leaf == "bias":
            values[name] = 0.05 * rng.standard_normal(shape)
        elif leaf == "running_mean":
            values[name] = np.zeros(shape)
        elif leaf == "running_var":
            values[name] = np.ones(shape)
        else:
            raise AssertionError(f"unexpected tensor {name} in the model template")
    stem = "backbone.downsample_layers.0."
    values[stem + "1.running_mean"], values[stem + "1.running_var"] = _stem_statistics(
        values[stem + "0.weight"], values[stem + "0.bias"], spec
    )

    state = {}
    for name in template:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(_NUM_BATCHES_TRACKED, dtype=torch.int64)
        else:
            state[name] = torch.from_numpy(values[name].astype(np.float32))
    return state


def to_release_keys(
    canonical: dict[str, torch.Tensor], legacy_head: bool
) -> dict[str, torch.Tensor]:
    """Canonical names -> the names in the released files: ``module.`` and, for M/L, .0/.1/.2."""
    numbered = {"dwconv": "0", "norm": "1", "pwconv": "2"}
    released = {}
    for name, tensor in canonical.items():
        parts = name.split(".")
        if legacy_head and parts[0] == "head" and parts[1].startswith("deconv_layers_"):
            parts[2] = numbered[parts[2]]
        released["module." + ".".join(parts)] = tensor
    return released


def adamw_state(network: dict[str, torch.Tensor], seed: int) -> dict:
    """An AdamW state_dict shaped like the released one: per-parameter step/exp_avg/exp_avg_sq."""
    rng = np.random.default_rng(seed + 7)
    params = [t for k, t in network.items() if not is_buffer(k)]
    state = {}
    for index, param in enumerate(params):
        shape = tuple(param.shape)
        state[index] = {
            "step": torch.tensor(float(_NUM_BATCHES_TRACKED)),
            "exp_avg": torch.from_numpy((1e-4 * rng.standard_normal(shape)).astype(np.float32)),
            "exp_avg_sq": torch.from_numpy((1e-8 * rng.random(shape)).astype(np.float32)),
        }
    return {"state": state, "param_groups": adamw_param_groups(len(params))}


def adamw_param_groups(count: int) -> list[dict]:
    """One AdamW group over count parameters, with the settings the reference trains with."""
    group = {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False,
        "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
        "fused": None, "params": list(range(count)),
    }  # fmt: skip
    return [group]


def is_buffer(name: str) -> bool:
    return name.rsplit(".", 1)[1] in {"running_mean", "running_var", "num_batches_tracked"}


def release_payload(
    variant: str,
    seed: int = 0,
    weights: dict[str, torch.Tensor] | None = None,
    optimizer: Callable[[dict[str, torch.Tensor]], dict] | None = None,
) -> dict:
    """The object the authors pickled: {'epoch', 'network', 'optimizer'} with release key names.

    weights: canonical float weights to package (the released XS); default seeded ones.
    optimizer: the optimizer state_dict for the network (release keys); default a seeded one.
    """
    spec = get_variant(variant)
    canonical = weights if weights is not None else seeded_state_dict(spec, seed)
    canonical = {
        k: v.to(torch.float32) if v.is_floating_point() else v for k, v in canonical.items()
    }
    for name in [k for k in ConvNeXtPose(spec).state_dict() if k.endswith("num_batches_tracked")]:
        canonical.setdefault(name, torch.tensor(_NUM_BATCHES_TRACKED, dtype=torch.int64))
    network = to_release_keys(canonical, spec.name in LEGACY_HEAD_VARIANTS)
    return {
        "epoch": RELEASE_EPOCH[spec.name],
        "network": network,
        "optimizer": optimizer(network) if optimizer is not None else adamw_state(network, seed),
    }


def fabricate_release(
    variant: str,
    directory: Path,
    seed: int = 0,
    weights: dict[str, torch.Tensor] | None = None,
    optimizer: Callable[[dict[str, torch.Tensor]], dict] | None = None,
) -> Path:
    """Write ``ConvNeXtPose_<V>.tar`` into directory the way the released file was made.

    weights, optimizer: what to package instead of seeded values (release_payload).
    """
    spec = get_variant(variant)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = release_payload(spec.name, seed, weights, optimizer)
    final = directory / f"ConvNeXtPose_{spec.name}.tar"
    if spec.name == "M":
        buffer = io.BytesIO()  # written through a buffer: torch names the archive "archive/"
        torch.save(payload, buffer)
        final.write_bytes(buffer.getvalue())
    else:
        snapshot = directory / f"snapshot_{payload['epoch']}.pth.tar"
        torch.save(payload, snapshot)  # archive prefix becomes "snapshot_NN.pth/"
        os.replace(snapshot, final)
    return final


def unzip_release(archive: Path, directory: Path) -> Path:
    """Unzip a release the way users do; returns the directory holding data.pkl."""
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        zf.extractall(directory)
    return Path(directory) / names[0].split("/", 1)[0]
