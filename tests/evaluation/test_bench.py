"""`cnp-convert bench` and the benchmark library: fields, honesty about devices, no speed claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from converter.cli.main import app
from converter.core.errors import UsageError, VariantMismatchError
from converter.evaluation.bench import (
    BenchOptions,
    benchmark,
    interleaved_rounds,
    speed_words,
)
from converter.runtimes.sessions import open_onnx_session
from converter.verdicts.verify import VerifyOptions

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def xs_onnx(onnx_cache) -> Path:
    return onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 0))[0]


def _check_report(report: dict, batches: list[int]) -> None:
    assert report["variant"] == "XS" and report["precision"] == "fp32"
    assert report["device"] == "cpu" and report["providers"] == ["CPUExecutionProvider"]
    machine = report["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and "gpu" in machine
    assert machine["onnxruntime_version"] and machine["torch_version"]
    assert [row["batch"] for row in report["rows"]] == batches
    for row in report["rows"]:
        for side in ("torch", "onnx"):
            stats = row[side]
            assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
            assert stats["fps"] > 0
        assert row["ratio_onnx_over_torch"] > 0
        assert row["speedup"] == pytest.approx(1 / row["ratio_onnx_over_torch"])


def test_bench_json_on_a_given_graph(xs_onnx: Path) -> None:
    # Seeded weights are rebuilt from the graph's metadata: no --checkpoint needed.
    result = invoke("bench", xs_onnx, "--runs", 2, "--batch", "1,2", "--threads", 1, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    _check_report(report, [1, 2])
    assert report["onnx_threads"] == 1 and report["torch_threads"] == 1
    assert report["spinning"] is False and report["io_binding"] is False
    assert report["export_seconds"] is None and report["runs"] == 2
    assert torch.get_num_threads() >= 1  # restored for the rest of the session


def test_bench_exports_when_no_model_is_given() -> None:
    result = invoke("bench", "--variant", "XS", "--runs", 1, "--batch", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    _check_report(report, [1])
    assert report["export_seconds"] > 0
    assert "RANDOM weights" in result.stderr


def test_bench_text_table(xs_onnx: Path) -> None:
    result = invoke("bench", xs_onnx, "--variant", "XS", "--runs", 1, "--batch", "1")
    assert result.exit_code == 0, result.output
    assert "vs PyTorch" in result.stdout and "x faster" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    rows = [row for row in rows if row and row[-1] in ("faster", "(reference)")]
    assert [row[:2] for row in rows] == [["1", "PyTorch"], ["1", "onnxruntime"]]
    assert "providers CPUExecutionProvider" in result.stdout


def test_bench_refuses_bad_options(xs_onnx: Path, tmp_path: Path) -> None:
    result = invoke("bench", xs_onnx, "--batch", "0")
    assert result.exit_code == 2 and "from 1 to 256" in result.stderr
    result = invoke("bench", xs_onnx, "--device", "tpu")
    assert result.exit_code == 2 and "Invalid value for '--device'" in result.stderr
    result = invoke("bench", xs_onnx, "--precision", "int8")
    assert result.exit_code == 2 and "MODEL is given" in result.stderr
    result = invoke("bench", tmp_path / "missing.onnx", "--variant", "XS")
    assert result.exit_code == 2 and "no such file" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_bench_cuda_without_cuda_exit_2(xs_onnx: Path) -> None:
    result = invoke("bench", xs_onnx, "--device", "cuda", "--runs", 1)
    assert result.exit_code == 2 and "CUDA asked for" in result.stderr


def test_benchmark_checks_variant_and_fixed_batch(onnx_cache, xs_onnx: Path) -> None:
    with pytest.raises(VariantMismatchError, match="ConvNeXtPose-XS"):
        benchmark(xs_onnx, onnx_cache.seeded_checkpoint("S", 0), BenchOptions(runs=1))
    fixed, _ = onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 0), batch=1)
    with pytest.raises(UsageError, match="fixed batch of 1"):
        benchmark(fixed, onnx_cache.seeded_checkpoint("XS", 0), BenchOptions(batch=(1, 8), runs=1))


def test_interleaved_alternates_and_settles() -> None:
    calls: list[str] = []
    a, b = interleaved_rounds(
        (lambda: calls.append("a"), lambda: calls.append("b")), runs=3, warmup=1
    )
    assert len(a) == len(b) == 3
    # warm-up a b; then each timed run follows an untimed one; order swaps every pair.
    assert "".join(calls) == "ab" + "aabb" + "bbaa" + "aabb"


@pytest.mark.cuda
def test_bench_cuda_uses_io_binding(xs_onnx: Path) -> None:
    if not torch.cuda.is_available() or open_onnx_session(xs_onnx, "auto").device != "cuda":
        pytest.skip("needs torch CUDA and a working onnxruntime CUDAExecutionProvider")
    result = invoke("bench", xs_onnx, "--device", "cuda", "--runs", 3, "--batch", "1,32", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device"] == "cuda" and report["io_binding"] is True
    assert report["providers"][0] == "CUDAExecutionProvider"
    assert report["torch_device"].startswith("cuda") and report["machine"]["gpu"]


@pytest.mark.cuda
def test_fp16_export_verifies_on_cuda(onnx_cache) -> None:
    from converter.verdicts.verify import verify_onnx

    if not torch.cuda.is_available():
        pytest.skip("needs torch CUDA")
    ckpt = onnx_cache.seeded_checkpoint("XS", 0)
    path, _ = onnx_cache.exported(ckpt, precision="fp16", ort_format=True)
    if open_onnx_session(path, "auto").device != "cuda":
        pytest.skip("needs torch CUDA and a working onnxruntime CUDAExecutionProvider")
    report = verify_onnx(path, ckpt, VerifyOptions(device="cuda"))
    assert report.passed and report.onnx_device == "cuda"


def test_batch_bound_is_verifys_just_inside_and_outside() -> None:
    from converter.verdicts import verify

    assert verify.MAX_BATCH == 256
    assert BenchOptions("cpu", (1, verify.MAX_BATCH)).batch == (1, 256)
    with pytest.raises(UsageError, match=r"from 1 to 256, not \[1, 257\]"):
        BenchOptions("cpu", (1, verify.MAX_BATCH + 1))


def test_bench_huge_batch_is_refused_before_any_work(tmp_path: Path) -> None:
    # The checkpoint is never opened (its absence is not what is reported) and nothing exported.
    result = invoke("bench", "--checkpoint", tmp_path / "missing.pth", "--batch", "1,100000")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: --batch sizes must be integers from 1 to 256, not [1, 100000]"
    )


@pytest.mark.parametrize(
    ("speedup", "words"),
    [(2.0, "2.00x faster"), (1.0, "1.00x faster"), (0.999, "1.00x slower"), (0.41, "2.44x slower")],
)
def test_a_slower_run_is_called_slower(speedup: float, words: str) -> None:
    assert speed_words(speedup) == words
