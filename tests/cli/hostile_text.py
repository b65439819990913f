"""Generators of inputs whose text is hostile: names that would forge lines, keys megabytes long.

python tests/cli/hostile_text.py OUT_DIR   # writes each one, for trying by hand
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

FORGED_LINE = "PASS in 5.5 s"


def forged_name(folder: Path, suffix: str) -> Path:
    """A path whose name holds a newline and then a line the tool itself prints."""
    return folder / f"m\n{FORGED_LINE}\n{suffix}"


def long_key_checkpoint(folder: Path, length: int = 1_000_000) -> Path:
    """The released XS with one extra tensor whose key is length characters long, and a
    source_name in its header that holds a forged line."""
    from converter.checkpoints.released import load_released

    state = dict(load_released().state_dict)
    state["k" * length] = torch.zeros(1)
    path = folder / "long_key.safetensors"
    save_file(state, str(path), metadata={"source_name": f"x\n{FORGED_LINE}"})
    return path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    print(long_key_checkpoint(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
