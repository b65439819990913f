"""OpenCV's DNN module as a runtime: the same verdict, on the graph OpenCV itself computes."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from converter.core.errors import OnnxModelError, UsageError
from converter.evaluation.evaluate import onnx_backend
from converter.runtimes import opencv_session
from converter.runtimes.opencv_session import OpenCvSession
from converter.runtimes.sessions import open_onnx_session, open_session
from converter.verdicts.verify import ParityFailedError, VerifyOptions, verify_onnx


@pytest.fixture(scope="module")
def xs_onnx(onnx_cache) -> Path:
    return onnx_cache.exported(onnx_cache.release_checkpoint("XS"))[0]


def test_opencv_runs_the_graph_as_onnxruntime_does(xs_onnx: Path) -> None:
    session = open_session(xs_onnx, "opencv", "cpu")
    assert isinstance(session, OpenCvSession) and session.device == "cpu"
    assert session.providers[0].startswith(f"OpenCV {cv2.__version__} DNN")
    assert session.input_name == "image" and session.output_names == ("coords",)
    assert session.input_shape[1:] == (3, 256, 256) and session.execution_precision is None
    rng = np.random.default_rng(0)
    for batch in (1, 3):  # batch 3 is what OpenCV 4.8 computed wrong (docs/compatibility.md)
        image = rng.normal(size=(batch, 3, 256, 256)).astype(np.float32)
        got = session.run(image)["coords"]
        want = open_onnx_session(xs_onnx, "cpu").run(image)["coords"]
        # Both fp32: their difference is summation order, 1e-5 heatmap units measured.
        assert got.shape == (batch, 18, 3) and np.abs(got - want).max() < 1e-3


def test_verify_on_opencv_uses_the_floor_rule(xs_onnx: Path, onnx_cache) -> None:
    ckpt = onnx_cache.release_checkpoint("XS")
    report = verify_onnx(xs_onnx, ckpt, VerifyOptions(device="cpu", samples=4, runtime="opencv"))
    assert report.passed and report.precision == "fp32" and report.runtime == "opencv"
    assert report.execution_precision is None and report.to_dict()["precision_source"] == "graph"
    assert report.providers[0].startswith("OpenCV ") and report.results


def test_a_runtime_that_computes_wrong_is_refused(xs_onnx: Path, onnx_cache, monkeypatch) -> None:
    # OpenCV 4.8 gave batch 3 of these graphs 8 heatmap units off with no error: what the
    # verdict sees when a runtime's kernel is wrong is a shifted output.
    real = OpenCvSession._forward

    def shifted(self, feed):
        values = real(self, feed)
        return [v + (np.float32(0.01) if feed.shape[0] > 1 else 0) for v in values]

    monkeypatch.setattr(OpenCvSession, "_forward", shifted)
    ckpt = onnx_cache.release_checkpoint("XS")
    with pytest.raises(ParityFailedError) as failed:
        verify_onnx(xs_onnx, ckpt, VerifyOptions(device="cpu", samples=4, runtime="opencv"))
    batches = {r.batch: r.passed for r in failed.value.report.results}
    assert batches[1] and not all(batches.values())


def test_opencv_errors_are_one_line(tmp_path: Path, xs_onnx: Path, monkeypatch) -> None:
    with pytest.raises(OnnxModelError, match="no such file"):
        OpenCvSession(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(OnnxModelError, match=r"junk\.onnx: not a readable ONNX model"):
        OpenCvSession(junk)  # refused by the graph bounds before OpenCV sees it

    def refuse(*args):  # OpenCV's own errors: a source path, a code, then more lines
        raise cv2.error("OpenCV(9.9) onnx_importer.cpp:1: error: (-2) unknown layer\n> more")

    with monkeypatch.context() as unreadable:
        unreadable.setattr(cv2.dnn, "readNetFromONNX", refuse)
        with pytest.raises(OnnxModelError, match=r"OpenCV cannot read it \(OpenCV\(9\.9\)") as e:
            OpenCvSession(xs_onnx)
        assert "\n" not in str(e.value) and "more" not in str(e.value)
    session = OpenCvSession(xs_onnx)
    monkeypatch.setattr(session, "_forward", refuse)
    with pytest.raises(OnnxModelError, match="OpenCV inference failed") as e:
        session.run(np.zeros((1, 3, 256, 256), np.float32))
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match=r"^threads must be at least 1"):
        OpenCvSession(xs_onnx, threads=0)
    with pytest.raises(UsageError, match="runs on the CPU here"):
        open_session(xs_onnx, "opencv", "cuda")
    monkeypatch.setattr(opencv_session, "_has_dnn", lambda cv2: False)
    with pytest.raises(UsageError, match=r"^runtime opencv: OpenCV .* has no DNN module"):
        open_session(xs_onnx, "opencv", "cpu")
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if it were not installed
    with pytest.raises(UsageError, match="OpenCV is not installed"):
        OpenCvSession(xs_onnx)


def test_eval_backend_on_opencv(xs_onnx: Path) -> None:
    backend = onnx_backend(xs_onnx, "cpu", threads=1, runtime="opencv")
    assert backend.device == "cpu" and backend.providers[0].startswith("OpenCV")
    assert backend(np.zeros((3, 3, 256, 256), np.float32)).shape == (3, 18, 3)
