"""doctor: the report, whether each provider really starts, and the advice for each failure."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from converter.cli.main import app
from converter.runtimes import doctor
from converter.runtimes.doctor import ORT_FOR_CUDA, provider_fix, run_doctor
from converter.runtimes.sessions import CPU_EP, CUDA_EP, TENSORRT_EP

runner = CliRunner()


def test_cpu_report_here() -> None:
    report = run_doctor("cpu")
    assert report.passed
    cpu = next(p for p in report.providers if p.name == CPU_EP)
    assert cpu.listed and cpu.starts and cpu.fix is None
    assert [p.name for p in report.providers] == [CPU_EP, CUDA_EP, TENSORRT_EP]
    assert report.packages["onnx"] and report.torch and report.onnxruntime == ort.__version__
    assert report.lines()[-1] == "OK: device cpu works"


def test_cuda_asked_where_it_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    report = run_doctor("cuda")
    assert not report.passed and report.lines()[-1].startswith("NOT OK")
    cuda = next(p for p in report.providers if p.name == CUDA_EP)
    assert not cuda.starts
    if torch.version.cuda is None:  # this machine: a CPU-only PyTorch
        assert any("CPU-only build" in line for line in report.advice)


def test_onnxruntime_without_cuda_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU_EP])
    monkeypatch.setattr(doctor, "nvidia_gpu_present", lambda: True)  # a GPU machine
    report = run_doctor("cuda")
    cuda = next(p for p in report.providers if p.name == CUDA_EP)
    assert not cuda.listed and not cuda.starts
    assert cuda.fix is not None and "pip install onnxruntime-gpu" in cuda.fix
    assert not report.passed


def test_no_gpu_means_no_gpu_package_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "nvidia_gpu_present", lambda: False)
    report = run_doctor("cuda")
    assert doctor.NO_GPU_ADVICE in report.advice
    assert all(p.fix is None for p in report.providers)
    assert "pip install" not in "\n".join(line for line in report.lines() if "onnxruntime" in line)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU_EP])
    assert all(p.fix is None for p in run_doctor("cuda").providers)


def test_a_library_that_does_not_load_names_it_and_the_fix() -> None:
    reason = "libcublasLt.so.13: cannot open shared object file: No such file or directory"
    fix = provider_fix(CUDA_EP, True, reason, "13.0", "13.0")
    assert fix is not None and "libcublasLt.so.13" in fix and "onnxruntime-gpu[cuda,cudnn]" in fix


def test_cuda_major_mismatch_names_the_onnxruntime_to_install() -> None:
    # Kaggle's case: PyTorch built for CUDA 12, onnxruntime-gpu built for CUDA 13.
    fix = provider_fix(CUDA_EP, True, "libcublasLt.so.13: cannot open", "12.4", "13.0")
    assert fix is not None and ORT_FOR_CUDA["12"] in fix and "CUDA 13" in fix
    assert provider_fix(CUDA_EP, True, "session fell back", "13.0", "13.0") is None


def test_tensorrt_library_missing() -> None:
    fix = provider_fix(
        TENSORRT_EP, True, "libnvinfer.so.10: cannot open shared object", None, "13.0"
    )
    assert fix is not None and "tensorrt" in fix


def test_cli_json_and_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["passed"] is True and payload["device"] == "cpu"
    assert {p["name"] for p in payload["providers"]} == {CPU_EP, CUDA_EP, TENSORRT_EP}
    monkeypatch.setattr(doctor, "PROBED", (CPU_EP, CUDA_EP))
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU_EP])
    result = runner.invoke(app, ["doctor", "--device", "cuda"])
    assert result.exit_code == 1 and "NOT OK: device cuda" in result.stdout
    result = runner.invoke(app, ["doctor", "--device", "gpu"])
    assert result.exit_code == 2
