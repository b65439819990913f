"""Sessions and devices: what really runs is read back, never assumed.

Uses a tiny hand-built graph (image + 1) so no export is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from converter.core.errors import OnnxModelError, ProviderError, UsageError
from converter.runtimes import sessions as runtime
from converter.runtimes.sessions import OnnxSession, open_onnx_session, resolve_torch_device


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 4, 4])
    coords = helper.make_tensor_value_info("coords", TensorProto.FLOAT, ["batch", 3, 4, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "one"], ["coords"])], "tiny", [image], [coords], [one]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def cuda_runs(tiny_onnx: Path) -> bool:
    """Whether onnxruntime's CUDA provider really runs here (not just listed)."""
    return open_onnx_session(tiny_onnx, "auto").device == "cuda"


def test_cpu_session_runs_and_reports_cpu(tiny_onnx: Path) -> None:
    session = open_onnx_session(tiny_onnx, "cpu", threads=1)
    assert session.providers == ("CPUExecutionProvider",)
    assert session.device == "cpu"
    assert session.fallback_reason is None
    assert session.input_name == "image"
    assert session.output_names == ("coords",)
    assert session.input_shape == ("batch", 3, 4, 4)
    x = np.arange(2 * 3 * 16, dtype=np.float64).reshape(2, 3, 4, 4)  # cast to float32 by run
    out = session.run(x)
    np.testing.assert_array_equal(out["coords"], x.astype(np.float32) + 1)


def test_auto_says_where_it_runs(tiny_onnx: Path) -> None:
    session = open_onnx_session(tiny_onnx, "auto")
    assert session.device in ("cpu", "cuda")
    assert session.device == ("cuda" if "CUDAExecutionProvider" in session.providers else "cpu")
    if session.device == "cpu":  # a fallback is always explained
        assert session.fallback_reason
        assert "CUDA not used" in session.describe()


def test_cuda_that_does_not_run_is_an_error(tiny_onnx: Path, cuda_runs: bool) -> None:
    if cuda_runs:
        pytest.skip("CUDA really runs here")
    with pytest.raises(ProviderError, match="CUDA asked for"):
        open_onnx_session(tiny_onnx, "cuda")


_REAL_SESSION = ort.InferenceSession


class _FakeSession:
    """Stands in for an InferenceSession that silently fell back to CPU."""

    requested: ClassVar[list] = []

    def __init__(self, path: str, sess_options=None, providers=None) -> None:
        type(self).requested = list(providers or [])
        self._real = _REAL_SESSION(path, providers=["CPUExecutionProvider"])

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]

    def __getattr__(self, name: str):
        return getattr(self._real, name)


@pytest.fixture
def listed_but_broken_cuda(monkeypatch: pytest.MonkeyPatch) -> type[_FakeSession]:
    """onnxruntime-gpu on a machine without a usable GPU: listed, its library loads, then the
    session is silently on CPU."""
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(runtime.ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(runtime, "cuda_provider_unloadable", lambda: None)
    return _FakeSession


def test_auto_does_not_try_a_provider_library_that_cannot_load(
    tiny_onnx: Path, listed_but_broken_cuda, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime logs a failed provider load below Python; auto, which asked for nothing in
    particular, does not try one the loader refuses, and says why once."""
    reason = "the CUDA provider library does not load: libcublasLt.so.13: cannot open"
    monkeypatch.setattr(runtime, "cuda_provider_unloadable", lambda: reason)
    session = open_onnx_session(tiny_onnx, "auto")
    assert listed_but_broken_cuda.requested == ["CPUExecutionProvider"]
    assert session.device == "cpu" and session.fallback_reason == reason
    with pytest.raises(ProviderError, match="CUDA asked for"):
        open_onnx_session(tiny_onnx, "cuda")  # asked for by name: tried, and refused
    assert listed_but_broken_cuda.requested[0][0] == "CUDAExecutionProvider"


def test_listed_cuda_that_falls_back_is_refused(tiny_onnx: Path, listed_but_broken_cuda) -> None:
    with pytest.raises(ProviderError) as info:
        open_onnx_session(tiny_onnx, "cuda")
    message = str(info.value)
    assert "runs on CPUExecutionProvider" in message
    assert "\n" not in message


def test_auto_falls_back_and_says_so(tiny_onnx: Path, listed_but_broken_cuda) -> None:
    session = open_onnx_session(tiny_onnx, "auto")
    assert session.device == "cpu"
    assert session.providers == ("CPUExecutionProvider",)
    assert "CUDAExecutionProvider was requested" in session.fallback_reason


def test_tensorrt_only_when_asked(tiny_onnx: Path, listed_but_broken_cuda) -> None:
    open_onnx_session(tiny_onnx, "auto")
    names = [p if isinstance(p, str) else p[0] for p in listed_but_broken_cuda.requested]
    assert names == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    open_onnx_session(tiny_onnx, "auto", tensorrt=True)
    names = [p if isinstance(p, str) else p[0] for p in listed_but_broken_cuda.requested]
    assert names[0] == "TensorrtExecutionProvider"
    open_onnx_session(tiny_onnx, "cpu")
    assert listed_but_broken_cuda.requested == ["CPUExecutionProvider"]


def test_cuda_without_the_provider_at_all(tiny_onnx: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="no CUDAExecutionProvider"):
        open_onnx_session(tiny_onnx, "cuda")
    assert "no CUDAExecutionProvider" in open_onnx_session(tiny_onnx, "auto").fallback_reason


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "empty"),
        (b"this is a text file, not a graph\n", "text"),
        (b"\x08\x07\x12\x03abc\xff\xff\xff\xff", "garbage"),
    ],
)
def test_non_onnx_files_are_model_errors(tmp_path: Path, content: bytes, what: str) -> None:
    bad = tmp_path / f"{what}.onnx"
    bad.write_bytes(content)
    with pytest.raises(OnnxModelError, match=str(bad)):
        open_onnx_session(bad, "cpu")


def test_truncated_onnx_is_a_model_error(tiny_onnx: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(tiny_onnx.read_bytes()[:40])
    with pytest.raises(OnnxModelError, match=r"truncated\.onnx"):
        open_onnx_session(bad, "cpu")


def test_missing_file_and_bad_options(tmp_path: Path, tiny_onnx: Path) -> None:
    with pytest.raises(OnnxModelError, match="no such file"):
        open_onnx_session(tmp_path / "nope.onnx", "cpu")
    with pytest.raises(UsageError, match="device must be one of"):
        open_onnx_session(tiny_onnx, "tpu")
    with pytest.raises(UsageError, match="threads"):
        open_onnx_session(tiny_onnx, "cpu", threads=0)


def test_wrong_input_at_run_time_is_a_model_error(tiny_onnx: Path) -> None:
    session = open_onnx_session(tiny_onnx, "cpu")
    with pytest.raises(OnnxModelError, match="inference failed"):
        session.run(np.zeros((1, 3, 5, 5), dtype=np.float32))


def test_resolve_torch_device() -> None:
    assert resolve_torch_device("cpu") == torch.device("cpu")
    assert resolve_torch_device(" AUTO ").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError):
        resolve_torch_device("gpu")


def test_torch_cuda_missing_is_a_provider_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("torch has CUDA here")
    with pytest.raises(ProviderError, match="CUDA asked for"):
        resolve_torch_device("cuda")


@pytest.mark.cuda
def test_cuda_session_really_runs_on_cuda(tiny_onnx: Path, cuda_runs: bool) -> None:
    if not cuda_runs:
        pytest.skip("onnxruntime's CUDAExecutionProvider cannot run here")
    session = open_onnx_session(tiny_onnx, "cuda")
    assert isinstance(session, OnnxSession)
    assert session.device == "cuda"
    assert session.providers[0] == "CUDAExecutionProvider"
    assert "TensorrtExecutionProvider" not in session.providers
    x = np.ones((1, 3, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(session.run(x)["coords"], x + 1)


def test_onnxruntime_s_own_fallback_banner_is_not_printed(tiny_onnx: Path, monkeypatch, capsys):
    """onnxruntime's wrapper prints an "EP Error" banner to stdout when a provider fails to load
    a graph (the fuzzer's mutated graphs did this); the one-line error is the report."""

    class Failing:
        def __init__(self, *args, **kwargs) -> None:
            print("*************** EP Error ***************")
            print("EP Error 'utf-8' codec can't decode byte 0x80 when using ['CPU']")
            raise RuntimeError("bad graph")

    monkeypatch.setattr(ort, "InferenceSession", Failing)
    with pytest.raises(OnnxModelError, match=r"onnxruntime cannot load it \(bad graph\)"):
        open_onnx_session(tiny_onnx, "cpu")
    assert capsys.readouterr().out == ""
