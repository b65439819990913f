"""TFLite as a target: onnx2tf converts in a bounded child, LiteRT runs, the verdict decides what
is written (converter.runtimes.tflite_session)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from converter.core.errors import OnnxModelError, OptionError
from converter.export.exporter import export_onnx
from converter.export.options import ExportOptions
from converter.runtimes import tflite_session
from converter.runtimes.sessions import open_onnx_session, open_session
from converter.runtimes.tflite_session import TfliteModel, TfliteSession, convert_to_tflite
from converter.runtimes.watched import RunTimeLimitError
from converter.verdicts.judge import ParityFailedError
from converter.verdicts.verify import VerifyOptions, verify_onnx


@pytest.fixture(scope="module")
def tflite_export(onnx_cache) -> tuple[Path, object]:
    """The XS graph exported for the tflite target: its .onnx, .tflite and report (onnx2tf once)."""
    return onnx_cache.exported(onnx_cache.release_checkpoint("XS"), target="tflite")


@pytest.fixture
def converted_bytes(tflite_export, monkeypatch) -> bytes:
    """Sessions get the exported .tflite's bytes instead of a fresh conversion (seconds each)."""
    content = tflite_export[0].with_suffix(".tflite").read_bytes()

    def reuse(path, input_name, time_limit_s=None) -> TfliteModel:
        return TfliteModel(content, "onnx2tf (the fixture's conversion)")

    monkeypatch.setattr(tflite_session, "convert_to_tflite", reuse)
    return content


def test_the_written_tflite_computes_what_the_graph_does(tflite_export) -> None:
    path, report = tflite_export
    tflite = path.with_suffix(".tflite")
    assert report.passed and report.opset == 11 and report.tflite_path == str(tflite)
    assert report.tflite_parity and all(p.passed for p in report.tflite_parity)
    assert report.tflite_runtime.startswith("LiteRT ") and "onnx2tf" in report.tflite_runtime
    assert report.to_dict()["tflite_path"] == str(tflite)
    # LiteRT directly, against onnxruntime on the .onnx: the tool's session is not used here
    interpreter = Interpreter(model_path=str(tflite))
    (fed,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    assert list(fed["shape_signature"]) == [-1, 3, 256, 256]  # the graph's NCHW input kept
    rng = np.random.default_rng(3)
    for batch in (1, 3):
        image = rng.normal(size=(batch, 3, 256, 256)).astype(np.float32)
        interpreter.resize_tensor_input(fed["index"], [batch, 3, 256, 256])
        interpreter.allocate_tensors()
        interpreter.set_tensor(fed["index"], image)
        interpreter.invoke()
        got = interpreter.get_tensor(out["index"])
        want = open_onnx_session(path, "cpu").run(image)["coords"]
        # Both fp32: summation order only, 2e-5 heatmap units measured (docs/compatibility.md)
        assert got.shape == (batch, 18, 3) and np.abs(got - want).max() < 1e-3


def test_a_tflite_that_fails_its_verdict_is_never_written(
    tmp_path: Path, onnx_cache, converted_bytes
) -> None:
    # The fixture's file computes other weights: what a converter that silently changes the
    # network gives (onnx2tf 1.28 on opset 18: docs/compatibility.md).
    other = onnx_cache.seeded_checkpoint("XS", 7)
    out = tmp_path / "model.onnx"
    with pytest.raises(ParityFailedError, match=r"verdict failed on the \.tflite on LiteRT") as e:
        export_onnx(other, out, ExportOptions(target="tflite", seed=5))
    assert list(tmp_path.iterdir()) == []  # neither the .tflite nor the .onnx
    report = e.value.report
    assert all(p.passed for p in report.parity) and not all(p.passed for p in report.tflite_parity)
    assert report.to_dict()["tflite_path"] is None and report.to_dict()["written"] is False
    assert any(line.startswith("  TFLite: not written") for line in report.lines())


def test_verify_on_tflite_uses_the_floor_rule(tflite_export, onnx_cache, converted_bytes) -> None:
    ckpt = onnx_cache.release_checkpoint("XS")
    options = VerifyOptions(device="cpu", samples=2, batch=(1, 3), runtime="tflite")
    report = verify_onnx(tflite_export[0], ckpt, options)
    assert report.passed and report.runtime == "tflite" and report.precision == "fp32"
    assert report.providers[0].startswith("LiteRT ") and [r.batch for r in report.results] == [1, 3]


def test_a_wrongly_shaped_output_is_named(tflite_export, converted_bytes, monkeypatch) -> None:
    session = open_session(tflite_export[0], "tflite", "cpu")
    assert isinstance(session, TfliteSession) and session.output_names == ("coords",)
    real = TfliteSession._forward
    monkeypatch.setattr(
        TfliteSession, "_forward", lambda self, feed: [real(self, feed)[0][..., :2]]
    )
    with pytest.raises(OnnxModelError, match=r"LiteRT gives coords as \[1, 18, 2\] at batch 1, "
                       r"the graph declares \['\?', 18, 3\]"):  # fmt: skip
        session.run(np.zeros((1, 3, 256, 256), np.float32))


def test_a_file_litert_cannot_load_is_one_line(tflite_export, monkeypatch) -> None:
    monkeypatch.setattr(
        tflite_session, "convert_to_tflite", lambda *a, **k: TfliteModel(b"\0" * 64, "onnx2tf x")
    )
    with pytest.raises(
        OnnxModelError, match=r"LiteRT cannot load the \.tflite onnx2tf x made"
    ) as e:
        TfliteSession(tflite_export[0])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        # onnx2tf prints coloured, many-line errors: the last line is the one that says why
        ("import sys; print('\\x1b[31mTraceback\\nValueError: bad graph\\x1b[0m'); sys.exit(1)",
         r"cannot convert it \(ValueError: bad graph\)$"),
        ("pass", r"wrote no float32 \.tflite file$"),
    ],
)  # fmt: skip
def test_converter_failures_are_one_line(
    tflite_export, monkeypatch, script: str, message: str
) -> None:
    monkeypatch.setattr(tflite_session, "_CONVERT_SCRIPT", script)
    with pytest.raises(OnnxModelError, match=message) as failed:
        convert_to_tflite(tflite_export[0], "image")
    assert "\n" not in str(failed.value) and "\x1b" not in str(failed.value)


def test_a_conversion_past_its_limit_is_stopped(tflite_export, monkeypatch) -> None:
    monkeypatch.setattr(tflite_session, "_CONVERT_SCRIPT", "import time; time.sleep(60)")
    with pytest.raises(RunTimeLimitError, match=r"ran past its time limit of 0\.5 s"):
        convert_to_tflite(tflite_export[0], "image", time_limit_s=0.5)


def test_missing_packages_are_named_before_any_work(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx2tf" else real(name, *a)
    )
    with pytest.raises(OptionError, match=r'^target tflite: onnx2tf not installed; pip install "'):
        ExportOptions(target="tflite")
    with pytest.raises(OptionError, match=r"^runtime tflite: onnx2tf not installed"):
        VerifyOptions(runtime="tflite")


def test_the_tflite_target_is_fp32_only() -> None:
    for precision in ("fp16", "int8"):
        with pytest.raises(OptionError, match=rf"^precision {precision}: the tflite target"):
            ExportOptions(target="tflite", precision=precision)
