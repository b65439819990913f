"""Forward passes that end: bounded in time and stopped by Ctrl-C or SIGTERM.

With control flow refused (graph_bounds), a graph's run is bounded by its size; this bounds it in
wall-clock time as well, and keeps a signal from waiting on native code.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..core.errors import OnnxModelError, OptionError, first_line

T = TypeVar("T")

# A forward pass longer than this is stopped: a base plus an allowance per operation the graph's
# shapes say it does (runtimes.graph_cost), 12-25x what ConvNeXtPose graphs take on a loaded
# 2-core CPU (docs/checkpoints.md, "Limits"). A graph whose cost is not known (an .ort file):
# a base plus an allowance per image.
RUN_LIMIT_BASE_S = 5.0
RUN_LIMIT_PER_OPERATION_S = 0.25e-9
RUN_LIMIT_UNKNOWN_BASE_S = 120.0
RUN_LIMIT_UNKNOWN_PER_IMAGE_S = 30.0
_POLL_S = 0.1  # how often a waiting caller wakes: signals are handled within this


class RunTimeLimitError(OnnxModelError):
    """A forward pass ran past its time limit and was stopped (exit 2: the graph is the cause)."""


def check_time_limit(value: float | None, option: str = "timeout") -> float | None:
    """A per-run time limit in seconds: None (the default from the batch) or positive, finite."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise OptionError(option, f"must be a positive number of seconds, not {value!r}")
    return number


def run_time_limit(batch: int, operations: int | None, given: float | None = None) -> float:
    """Seconds one forward pass may take: the given limit, or the default for its operations
    (None: not known, then from its batch)."""
    if given is not None:
        return given
    if operations is None:
        return RUN_LIMIT_UNKNOWN_BASE_S + RUN_LIMIT_UNKNOWN_PER_IMAGE_S * batch
    return RUN_LIMIT_BASE_S + RUN_LIMIT_PER_OPERATION_S * operations


class WatchedRunner:
    """Runs calls on one daemon thread while the caller waits, so that the caller stays in Python.

    A runtime inside native code never returns to the interpreter, so neither a signal handler
    nor a timer can run on its thread. Here the caller waits in short sleeps: Ctrl-C or SIGTERM
    raises there within _POLL_S, and a run past its limit raises RunTimeLimitError; either way
    stop() is called (onnxruntime's terminate flag, OpenVINO's cancel) so the native work ends
    too. The thread is a daemon: a run that ignores stop() cannot keep the process alive.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job, box, done = self._jobs.get()
            try:
                box.append((True, job()))
            except BaseException as exc:  # handed to the caller, raised there
                box.append((False, exc))
            done.set()

    def call(self, job: Callable[[], object], limit_s: float, stop: Callable[[], None], what: str):
        box: list = []
        done = threading.Event()
        self._jobs.put((job, box, done))
        deadline = time.monotonic() + limit_s
        try:
            while not done.wait(min(_POLL_S, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise RunTimeLimitError(
                        f"{what}: ran past its time limit of {limit_s:g} s and was stopped",
                        remedies=(("timeout", "SECONDS for a longer limit"),),
                    )
        except BaseException:
            stop()
            done.wait(1.0)  # let the runtime notice; never wait on it for long
            raise
        ok, value = box[0]
        if not ok:
            raise value
        return value


def no_cancel() -> None:
    """stop() for a runtime whose run has no cancel (OpenCV's forward(), LiteRT's invoke()): a run
    past its limit is left to its daemon thread, and the command ends (WatchedRunner never waits
    on it for long)."""
    return None


def watched_inference(
    runner: WatchedRunner,
    job: Callable[[np.ndarray], T],
    feed: np.ndarray,
    *,
    path: Path,
    runtime: str,
    operations: int | None,
    time_limit_s: float | None,
    stop: Callable[[], None],
) -> T:
    """job(feed) on the runner within its time limit (run_time_limit of its batch and operations);
    a runtime's own error becomes one line naming the file and the runtime."""
    limit = run_time_limit(int(feed.shape[0]), operations, time_limit_s)
    try:
        return runner.call(lambda: job(feed), limit, stop, str(path))
    except RunTimeLimitError:
        raise
    except Exception as exc:  # each runtime's own errors, some of many lines (cv2.error)
        raise OnnxModelError(
            f"{path}: {runtime} inference failed ({first_line(exc)[:300]})"
        ) from None
