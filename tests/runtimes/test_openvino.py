"""OpenVINO as a runtime: the precision it really runs in decides the verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from converter.checkpoints.released import load_released
from converter.core.errors import OnnxModelError, UsageError
from converter.evaluation.bench import BenchOptions, Contender, benchmark, interleaved_rounds
from converter.evaluation.evaluate import onnx_backend
from converter.runtimes.openvino_session import OpenVinoSession
from converter.runtimes.sessions import open_onnx_session, open_session
from converter.verdicts.tolerances import POSE_BUDGETS, judged_precision
from converter.verdicts.verify import ParityFailedError, VerifyOptions, verify_onnx


@pytest.fixture(scope="module")
def xs_onnx(onnx_cache) -> Path:
    return onnx_cache.exported(onnx_cache.release_checkpoint("XS"))[0]


@pytest.fixture(scope="module")
def released():
    return load_released()


@pytest.fixture(scope="module")
def released_onnx(onnx_cache, released) -> Path:
    return onnx_cache.exported(released)[0]


def test_judged_precision_is_the_coarser_one() -> None:
    assert judged_precision("fp32") == "fp32"
    assert judged_precision("fp32", "f32") == "fp32"
    assert judged_precision("fp32", "bf16") == "bf16"
    assert judged_precision("fp16", "f32") == "fp16"  # running wider does not make it fp32
    assert judged_precision("fp16", "bf16") == "bf16"
    assert judged_precision("int8", "bf16") == "int8"
    assert judged_precision("int8", "f32") == "int8"
    with pytest.raises(ValueError, match="unknown execution precision"):
        judged_precision("fp32", "tf32")


def test_bf16_budget_refuses_what_bf16_does_to_the_released_xs() -> None:
    # Measured (benchmarks/precision_sweep.py --precision bf16, OpenVINO 2026.4 on an AVX-512
    # BF16 CPU): the released XS on the real photo crops 3.24 / 7.57 / 76.9 mm, random XS 5.42 /
    # 13.2 / 33.4 mm on drawn figures. A budget for photos must refuse both.
    budget = POSE_BUDGETS["bf16"]
    assert budget.mean_mm < 3.24 and budget.worst_mm < 76.9
    assert budget.mean_mm < 5.42 and budget.p95_mm < 13.2


def test_f32_execution_matches_onnxruntime(xs_onnx: Path) -> None:
    session = OpenVinoSession(xs_onnx, threads=1, precision="f32")
    assert session.execution_precision == "f32" and session.device == "cpu"
    assert session.providers[0].startswith("OpenVINO ") and "f32" in session.providers[0]
    assert session.input_name == "image" and session.output_names == ("coords",)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 3, 256, 256)).astype(np.float32)
    got = session.run(image)["coords"]
    again = session.run(image)["coords"]
    want = open_onnx_session(xs_onnx, "cpu").run(image)["coords"]
    assert got.shape == (2, 18, 3) and np.array_equal(got, again)  # outputs are copies
    assert np.abs(got - want).max() < 1e-3


def test_bf16_is_read_back_not_assumed(xs_onnx: Path) -> None:
    session = OpenVinoSession(xs_onnx, threads=1, precision="bf16")
    # On a CPU without bf16 units OpenVINO falls back to f32: either way, what it says counts.
    assert session.execution_precision in ("bf16", "f32")


def test_openvino_errors_are_one_line(tmp_path: Path, xs_onnx: Path, monkeypatch) -> None:
    with pytest.raises(OnnxModelError, match="no such file"):
        OpenVinoSession(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(OnnxModelError, match=r"junk\.onnx: not a readable ONNX model"):
        OpenVinoSession(junk)  # refused by the graph bounds before OpenVINO sees it
    from converter.runtimes import openvino_session

    with monkeypatch.context() as unchecked:  # OpenVINO's own failure, also one line
        unchecked.setattr(openvino_session, "check_bounded_graph", lambda path: None)
        with pytest.raises(OnnxModelError, match="OpenVINO cannot compile it"):
            OpenVinoSession(junk)
    with pytest.raises(UsageError, match=r"^ov_precision must be one of"):
        OpenVinoSession(xs_onnx, precision="int4")
    with pytest.raises(UsageError, match="runs on the CPU here"):
        open_session(xs_onnx, "openvino", "cuda")
    with pytest.raises(UsageError, match=r"^runtime must be one of"):
        open_session(xs_onnx, "tensorflow")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(UsageError, match=r"pip install \"cnp-convert\[openvino\]\""):
        OpenVinoSession(xs_onnx)


def test_verify_on_openvino_f32_uses_the_floor_rule(xs_onnx: Path, onnx_cache) -> None:
    ckpt = onnx_cache.release_checkpoint("XS")
    report = verify_onnx(
        xs_onnx,
        ckpt,
        VerifyOptions(device="cpu", samples=4, runtime="openvino", ov_precision="f32"),
    )
    assert report.passed and report.precision == "fp32" and report.execution_precision == "f32"
    assert report.runtime == "openvino" and report.results and not report.pose
    assert report.to_dict()["precision_source"] == "runtime"


def _runs_bf16(path: Path) -> bool:
    """Whether this CPU really runs OpenVINO in bf16 (AMX / AVX-512 BF16); else it says f32."""
    return OpenVinoSession(path, threads=1, precision="bf16").execution_precision == "bf16"


def test_verify_on_bf16_is_judged_by_the_pose_budget(released_onnx: Path, released) -> None:
    def run():
        return verify_onnx(
            released_onnx,
            released,
            VerifyOptions(device="cpu", runtime="openvino", ov_precision="bf16", frames=16),
        )

    if _runs_bf16(released_onnx):
        # bf16 moves the released XS's joints past the budget on real photos: refused, exit 1.
        with pytest.raises(ParityFailedError) as failed:
            run()
        report = failed.value.report
        assert report.precision == "bf16" and report.pose and not report.results
        assert "executed in bf16: judged as bf16" in "\n".join(report.lines())
        photos = [p for p in report.pose if "real photos" in p.source]
        assert photos and not any(p.passed for p in photos)
    else:  # the CPU fell back to f32: then the floor rule applies
        report = run()
        assert report.passed and report.precision == "fp32" and report.results


def test_bf16_on_random_weights_fails_its_budget(xs_onnx: Path, onnx_cache) -> None:
    # Random weights amplify every rounding (5.42 mm mean measured): the verdict must refuse.
    def run():
        return verify_onnx(
            xs_onnx,
            onnx_cache.release_checkpoint("XS"),
            VerifyOptions(device="cpu", runtime="openvino", ov_precision="bf16", frames=16),
        )

    if _runs_bf16(xs_onnx):
        with pytest.raises(ParityFailedError, match="bf16 pose change"):
            run()
    else:
        assert run().passed  # f32 execution of a correct graph


def test_eval_backend_on_openvino(xs_onnx: Path) -> None:
    backend = onnx_backend(xs_onnx, "cpu", threads=1, runtime="openvino", ov_precision="f32")
    assert backend.device == "cpu" and backend.providers[0].startswith("OpenVINO")
    image = np.zeros((3, 3, 256, 256), np.float32)
    assert backend(image).shape == (3, 18, 3)


def test_interleaved_rounds_rotate_three_runners() -> None:
    calls: list[str] = []
    runners = [lambda name=name: calls.append(name) for name in "abc"]
    times = interleaved_rounds(runners, runs=3, warmup=1)
    assert [len(t) for t in times] == [3, 3, 3]
    # warm-up abc; then each timed run follows an untimed one; the order rotates each round.
    assert "".join(calls) == "abc" + "aabbcc" + "bbccaa" + "ccaabb"


def test_bench_times_contenders_in_the_same_rounds(xs_onnx: Path, onnx_cache) -> None:
    contender = Contender("openvino f32", xs_onnx, "openvino", "f32")
    report = benchmark(
        xs_onnx,
        onnx_cache.release_checkpoint("XS"),
        BenchOptions(batch=(1,), runs=2, warmup=0, threads=1),
        contenders=(contender,),
    )
    (row,) = report.rows
    (other,) = row.others
    assert other.label == "openvino f32" and other.runtime == "openvino"
    assert other.execution_precision == "f32" and other.providers[0].startswith("OpenVINO")
    assert other.latency.median_ms > 0 and other.speedup == pytest.approx(
        1 / other.ratio_over_torch
    )
    assert report.to_dict()["rows"][0]["others"][0]["label"] == "openvino f32"
    assert any("openvino f32:" in line for line in report.lines())
    assert report.runtime == "onnxruntime" and report.execution_precision is None
