"""The authors' ConvNeXtPose-XS (snapshot_68), rebuilt from its public storages, in the package.

``released_xs.safetensors`` holds the fp32 network: 183 of its 194 tensors are the authors'
numbers bit for bit; the 11 lost ones (the stem conv, the stem BatchNorm, the BatchNorm before
the first downsampling conv: 2,120 of 3,528,008 parameters) were recovered by
training/rebuild_released_xs.py, which wrote the file and records in its header where every
tensor comes from. ``released_xs_optimizer.safetensors`` holds the authors' AdamW moments (the
402 optimizer storages), so the Drive-shaped file this module writes carries the real optimizer
state. Weights by the ConvNeXtPose authors (Korea University Media Lab), MIT licence.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..core.errors import CheckpointError
from .canonical import CanonicalCheckpoint, load_checkpoint
from .fabricate import adamw_param_groups, fabricate_release, is_buffer

RELEASED_VARIANT = "XS"
RELEASED_FILE = Path(__file__).with_name("released_xs.safetensors")
OPTIMIZER_FILE = Path(__file__).with_name("released_xs_optimizer.safetensors")
_MOMENTS = ("step", "exp_avg", "exp_avg_sq")


def load_released() -> CanonicalCheckpoint:
    if not RELEASED_FILE.is_file():
        raise CheckpointError(f"{RELEASED_FILE}: the released XS weights are not installed")
    return load_checkpoint(RELEASED_FILE, RELEASED_VARIANT)


def provenance(ckpt: CanonicalCheckpoint) -> dict:
    """Where the weights come from: source, commit, the authors' and the recovered tensors."""
    header = ckpt.raw.header_metadata if ckpt.raw is not None else {}
    if "provenance" not in header:
        raise CheckpointError(f"{RELEASED_FILE}: no 'provenance' record in the header")
    return json.loads(header["provenance"])


def authors_optimizer(network: dict[str, torch.Tensor]) -> dict:
    """The released AdamW state_dict: per parameter, in ``named_parameters()`` order, the
    authors' step, exp_avg and exp_avg_sq; the hyperparameters are not in the public storages."""
    if not OPTIMIZER_FILE.is_file():
        raise CheckpointError(f"{OPTIMIZER_FILE}: the released optimizer state is not installed")
    moments = load_file(str(OPTIMIZER_FILE))
    names = [k.removeprefix("module.") for k in network if not is_buffer(k)]
    state = {}
    for index, name in enumerate(names):
        try:
            state[index] = {m: moments[f"{name}.{m}"] for m in _MOMENTS}
        except KeyError as exc:
            raise CheckpointError(f"{OPTIMIZER_FILE}: no moment {exc.args[0]!r}") from None
    return {"state": state, "param_groups": adamw_param_groups(len(names))}


def released_release(directory: str | Path) -> Path:
    """The released XS as users hold it: ``ConvNeXtPose_XS.tar``, a torch zip with ``module.``
    keys, epoch 68 and the authors' optimizer state."""
    # num_batches_tracked is left out so the package writes the recorded count (release_payload).
    weights = {
        k: v for k, v in load_released().state_dict.items() if not k.endswith("num_batches_tracked")
    }
    return fabricate_release(
        RELEASED_VARIANT, Path(directory), weights=weights, optimizer=authors_optimizer
    )
