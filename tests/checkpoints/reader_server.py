"""The fuzz harness's reader: a lean process that reads each fuzzed file in a forked child under a
memory cap (RLIMIT_AS) and a time cap (alarm), and says how the read ended.

A test worker maps more with every runtime it loads (PyTorch, OpenVINO, LiteRT): forked from one
late in a run, an example's fork and exit cost more than its read (docs/development.md). This
process imports only what the reads need, once, and forks from that.

Protocol, one JSON line each way: {"read": NAME, "path": PATH} in (NAME: a function below),
{"outcome", "detail"} out.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
import warnings
from pathlib import Path

# Bytes of address space a read may add to what this process maps.
MEMORY_HEADROOM = 1536 * 1024**2
TIME_CAP = 20  # seconds per read

OK, REFUSED, CRASHED, KILLED = 0, 2, 3, -1


def checkpoint(path: Path) -> None:
    from converter.checkpoints.canonical import canonicalize
    from converter.checkpoints.reader import read_checkpoint

    canonicalize(read_checkpoint(path))


def image(path: Path) -> None:
    from converter.h36m.image_files import read_bgr

    read_bgr(path)


def boxes_file(path: Path) -> None:
    from converter.prediction.run import read_boxes_file

    read_boxes_file(path)


def dataset(root: Path) -> None:
    from converter.h36m.dataset import load_dataset

    bbox_root = root / "bbox_root" / "bbox_root_human36m_output.json"
    for protocol in (1, 2):
        load_dataset(root, protocol, bbox_root=bbox_root, require_images=False)


def graph(path: Path) -> None:
    import numpy as np

    from converter.prediction.predictor import PosePredictor

    PosePredictor(path, device="cpu", threads=1).predict(np.zeros((64, 48, 3), np.uint8))


def crash(path: Path) -> None:
    """The harness's own check: an exception that is not the tool's error."""
    raise KeyError("not a ConverterError")


def hungry(path: Path) -> None:
    """The harness's own check: more memory than the cap allows."""
    bytearray(MEMORY_HEADROOM * 2)


READS = {f.__name__: f for f in (checkpoint, image, boxes_file, dataset, graph, crash, hungry)}


def _mapped_bytes() -> int:
    """This process's address space now (VmSize in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def read_in_child(read, path: Path) -> tuple[int, str]:
    """(outcome, detail): read(path) in a forked child with the memory and time caps."""
    from converter.core.errors import ConverterError

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        code, detail = OK, ""
        try:
            cap = _mapped_bytes() + MEMORY_HEADROOM
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            signal.alarm(TIME_CAP)
            # numpy's overflow and invalid-value warnings would reach the user's terminal
            warnings.simplefilter("error", RuntimeWarning)
            read(path)
        except ConverterError as exc:
            code, detail = REFUSED, str(exc)
        except BaseException:  # anything else is a finding
            code, detail = CRASHED, traceback.format_exc()
        os.write(write_end, detail.encode()[:4000])
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        detail = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return KILLED, f"killed by signal {os.WTERMSIG(status)} (time or memory cap)"
    return os.WEXITSTATUS(status), detail


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what an import or a read prints goes to stderr, never into the answers
    import torch

    torch.set_num_threads(1)  # fork-safe: no intra-op thread pool to inherit
    # What the reads import, imported once here rather than in every child.
    import converter.checkpoints.canonical
    import converter.h36m.dataset
    import converter.h36m.image_files
    import converter.prediction.predictor
    import converter.prediction.run  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        outcome, detail = read_in_child(READS[request["read"]], Path(request["path"]))
        answers.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
