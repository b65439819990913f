"""Forward passes end: a run past its time limit is stopped (exit 2), and Ctrl-C or SIGTERM
lands while the runtime is inside native code (tests/runtimes/hostile_graphs.py makes the slow
graph: seconds of softmaxes after a real export's coords, no control flow; with their cost
understated, the graph is within the cost limits)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_graphs import slow_after_coords

from converter.checkpoints.released import load_released
from converter.core.errors import OnnxModelError, OptionError
from converter.h36m.photos import photo_paths
from converter.runtimes.sessions import open_onnx_session
from converter.runtimes.watched import (
    RunTimeLimitError,
    WatchedRunner,
    check_time_limit,
    run_time_limit,
)

# softmaxes: with the export, 15.4 G operations by the shapes with their factor at 1 (limit 16 G)
STEPS = 50


@pytest.fixture(scope="module")
def slow_graph(onnx_cache, tmp_path_factory) -> Path:
    released = onnx_cache.exported(load_released())[0]
    return slow_after_coords(released, tmp_path_factory.mktemp("slow"), steps=STEPS)


@pytest.fixture
def understated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow graph's softmaxes costed as if over the last axis: an operator whose cost the
    shapes understate, as one unmeasured on some machine could be."""
    from converter.runtimes import graph_cost

    monkeypatch.setattr(graph_cost, "SOFTMAX_NOT_LAST_AXIS", 1)


def test_time_limit_values_are_checked() -> None:
    assert check_time_limit(None) is None
    assert check_time_limit(1e-3) == 1e-3  # just inside: any positive time
    for bad in (0.0, -1.0, float("inf"), float("nan")):  # just outside, and the non-numbers
        with pytest.raises(OptionError, match="timeout must be a positive number of seconds"):
            check_time_limit(bad)


def test_default_limit_follows_the_graphs_work() -> None:
    # 5 s and 0.25 ns per operation; an .ort file (work unknown): 120 s and 30 s per image
    # (runtimes/watched.py's constants, written out here)
    assert run_time_limit(1, 4 * 10**9) == pytest.approx(6.0)
    assert run_time_limit(8, 40 * 10**9) == pytest.approx(15.0)
    assert run_time_limit(8, None) == 360.0
    assert run_time_limit(8, 40 * 10**9, given=2.5) == 2.5


def test_the_slow_graph_is_refused_by_its_cost(slow_graph: Path) -> None:
    """Costed as measured (32x per element over an axis that is not the last), it is far over
    the limit: refused before a session exists."""
    with pytest.raises(OnnxModelError, match=r"G operations \(limit 16 G at batch 1; most in"):
        open_onnx_session(slow_graph, "cpu", threads=1)


def test_a_graph_whose_cost_is_understated_is_stopped_by_the_default_limit(
    slow_graph: Path, understated: None
) -> None:
    """Its shapes then say 15.4 G operations (the rule with a 1 s base: 4.84 s); its softmaxes
    take about 12 s on one thread: the time limit stops it."""
    from converter.runtimes import watched

    watched.RUN_LIMIT_BASE_S, base = 1.0, watched.RUN_LIMIT_BASE_S  # the rule, a smaller base
    try:
        session = open_onnx_session(slow_graph, "cpu", threads=1)
        started = time.monotonic()
        with pytest.raises(RunTimeLimitError, match=r"time limit of 4\.84\d* s"):
            session.run(np.zeros((1, 3, 256, 256), np.float32))
    finally:
        watched.RUN_LIMIT_BASE_S = base
    assert time.monotonic() - started < 12


def test_runner_returns_values_and_raises_errors() -> None:
    runner = WatchedRunner("test-runner")
    stopped = []
    assert runner.call(lambda: 41 + 1, 5.0, lambda: stopped.append(1), "job") == 42
    with pytest.raises(ZeroDivisionError):
        runner.call(lambda: 1 / 0, 5.0, lambda: stopped.append(1), "job")
    assert stopped == []  # a job that ends by itself is never stopped


def test_runner_stops_a_job_just_past_its_limit() -> None:
    runner = WatchedRunner("test-runner")
    ended = threading.Event()

    def job() -> None:  # stands in for native work that only ends when told to
        ended.wait(30)

    started = time.monotonic()
    with pytest.raises(RunTimeLimitError, match=r"job: ran past its time limit of 0\.3 s"):
        runner.call(job, 0.3, ended.set, "job")
    assert ended.is_set() and time.monotonic() - started < 5
    # A job just inside its limit passes, on the same runner, once the stopped one has ended.
    assert runner.call(lambda: time.sleep(0.05) or "done", 3.0, ended.set, "job") == "done"


def test_a_real_graph_past_its_limit_is_stopped(slow_graph: Path, understated: None) -> None:
    session = open_onnx_session(slow_graph, "cpu", threads=1, time_limit_s=0.5)
    image = np.zeros((1, 3, 256, 256), np.float32)
    started = time.monotonic()
    with pytest.raises(RunTimeLimitError, match=r"time limit of 0\.5 s") as stopped:
        session.run(image)
    assert isinstance(stopped.value, OnnxModelError)  # exit 2: the graph is the cause
    assert time.monotonic() - started < 5  # the graph itself runs for about 12 s
    # onnxruntime's terminate flag really ended the native work: the process goes idle.
    time.sleep(0.5)
    cpu = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - cpu < 0.5


def test_ctrl_c_lands_while_the_runtime_is_in_native_code(
    slow_graph: Path, understated: None
) -> None:
    """Before: the signal's handler waited for the run to return (minutes)."""
    session = open_onnx_session(slow_graph, "cpu", threads=1)
    image = np.zeros((1, 3, 256, 256), np.float32)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        session.run(image)
    assert time.monotonic() - started < 5


def test_timeout_is_one_line_and_exit_2_from_the_command_line(
    slow_graph: Path, tmp_path: Path, understated: None, cli
) -> None:
    args = ["predict", str(slow_graph), str(photo_paths()[0]), "--timeout", "1",
            "--threads", "1", "-o", str(tmp_path / "o")]  # fmt: skip
    done = cli(*args)
    assert done.exit_code == 2, done.output
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "ran past its time limit of 1 s and was stopped; pass --timeout SECONDS" in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_openvino_past_its_limit_is_cancelled(
    onnx_cache, tmp_path: Path, understated: None
) -> None:
    pytest.importorskip("openvino")
    from converter.runtimes.openvino_session import OpenVinoSession

    released = onnx_cache.exported(load_released())[0]
    graph = slow_after_coords(released, tmp_path, steps=STEPS)
    session = OpenVinoSession(graph, threads=1, time_limit_s=0.02)
    started = time.monotonic()
    with pytest.raises(RunTimeLimitError, match=r"time limit of 0\.02 s"):
        session.run(np.zeros((1, 3, 256, 256), np.float32))
    assert time.monotonic() - started < 5
    time.sleep(0.5)
    cpu = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - cpu < 0.5  # the request was cancelled, not left running


def _every_jobs_options():
    from converter.evaluation.bench import BenchOptions
    from converter.evaluation.run import EvalOptions
    from converter.prediction.run import PredictOptions
    from converter.verdicts.verify import VerifyOptions

    return [
        lambda t: VerifyOptions(timeout=t),
        lambda t: EvalOptions(data=Path("h36m"), onnx=Path("g.onnx"), variant="XS", timeout=t),
        lambda t: PredictOptions(model=Path("m.onnx"), images=(Path("a.png"),), timeout=t),
        lambda t: BenchOptions(timeout=t),
    ]


@pytest.mark.parametrize("make", _every_jobs_options())
def test_every_job_that_runs_a_graph_takes_a_checked_timeout(make) -> None:
    assert make(None).timeout is None and make(2).timeout == 2.0
    with pytest.raises(OptionError, match="timeout must be a positive number of seconds"):
        make(-0.5)
