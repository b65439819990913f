"""`cnp-convert eval` and `cnp-convert demo-data` through the Typer app: output and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from converter.cli.main import app
from converter.evaluation.evaluate import RESULT_FILE

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "h36m"
    result = invoke("demo-data", root, "--layout", "kaggle")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def models(onnx_cache, release_file) -> tuple[Path, Path]:
    onnx_path, _ = onnx_cache.exported(onnx_cache.release_checkpoint("XS"))
    return release_file("XS"), onnx_path


def test_demo_data_writes_both_layouts_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = invoke("demo-data", tmp_path / "ref", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == 93 and summary["layout"] == "reference"
    assert (tmp_path / "ref" / "annotations" / "Human36M_subject9_data.json").is_file()
    assert len(list((tmp_path / "ref" / "images").rglob("*.jpg"))) == 93
    again = invoke("demo-data", tmp_path / "ref")
    assert again.exit_code == 2 and "not empty" in again.output
    assert invoke("demo-data", tmp_path / "ref", "--force").exit_code == 0
    bad = invoke("demo-data", tmp_path / "x", "--layout", "flat")
    assert bad.exit_code == 2 and "--layout" in bad.output


def test_demo_data_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert invoke("demo-data", tmp_path / name).exit_code == 0
    for relative in (
        "annotations/Human36M_subject11_data.json",
        "bbox_root/bbox_root_human36m_output.json",
        "images/s_11_act_14_subact_02_ca_04/s_11_act_14_subact_02_ca_04_000065.jpg",
    ):
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


def test_eval_both_backends_agree(data_root: Path, models, tmp_path: Path) -> None:
    checkpoint, onnx_path = models
    result = invoke(
        "eval", "--data", data_root, "--checkpoint", checkpoint, "--onnx", onnx_path,
        "--limit", "12", "--batch", "6", "--device", "cpu", "--no-progress",
        "--predictions", tmp_path / "pred", "--vis", tmp_path / "vis",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Protocol 2 MPJPE" in out and "kaggle layout" in out
    assert "torch" in out and "onnx" in out and "agree within 0.1 mm" in out
    assert "Directions" in out and "Walking" in out and "R_Wrist" in out
    assert "Thorax" not in out
    assert "frames/s" in out
    for backend in ("torch", "onnx"):
        assert (tmp_path / "pred" / RESULT_FILE.format(backend=backend)).is_file()
    assert len(list((tmp_path / "vis").glob("*.jpg"))) == 6


def test_eval_json_and_disagreement_exit_1(data_root: Path, models) -> None:
    checkpoint, onnx_path = models
    common = (
        "eval", "--data", data_root, "--checkpoint", checkpoint, "--onnx", onnx_path,
        "--limit", "4", "--device", "cpu", "--no-progress", "--json", "--no-flip",
    )  # fmt: skip
    result = invoke(*common)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["agree"] is True and report["flip_test"] is False
    assert [b["backend"] for b in report["backends"]] == ["torch", "onnx"]
    assert report["backends"][1]["device"] == "cpu"
    assert abs(report["comparison"]["difference_mm"]) < 0.05
    assert set(report["backends"][0]["per_action_mm"]) == {"Directions", "Walking"}
    # a tolerance no real difference can meet: the check fails with exit code 1
    strict = invoke(*common, "--max-delta-mm", "-1")
    assert strict.exit_code == 1
    assert "differ by" in strict.stderr and "--max-delta-mm -1" in strict.stderr


def test_eval_single_backend_protocol_1_with_rootnet(data_root: Path, models) -> None:
    checkpoint, _ = models
    result = invoke(
        "eval", "--data", data_root, "--checkpoint", checkpoint, "--backend", "torch",
        "--protocol", "1", "--bbox-root", data_root / "bbox_root/bbox_root_human36m_output.json",
        "--limit", "3", "--device", "cpu", "--no-progress", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "PA-MPJPE" and report["comparison"] is None
    assert report["bbox_source"].endswith("bbox_root_human36m_output.json")


def test_eval_onnx_only_reads_the_variant_from_metadata(data_root: Path, models) -> None:
    _, onnx_path = models
    result = invoke("eval", "--data", data_root, "--onnx", onnx_path, "--backend", "onnx",
                    "--limit", "2", "--device", "cpu", "--no-progress", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["variant"] == "XS"
    wrong = invoke("eval", "--data", data_root, "--onnx", onnx_path, "--backend", "onnx",
                   "--variant", "L", "--limit", "2", "--no-progress")  # fmt: skip
    assert wrong.exit_code == 2 and "but the model is XS" in wrong.stderr


def test_eval_missing_images_exit_2_before_inference(data_root: Path, models, tmp_path) -> None:
    checkpoint, onnx_path = models
    root = tmp_path / "partial"
    shutil.copytree(data_root, root)
    for path in sorted((root / "S9_ACT2_16").rglob("*.jpg"))[:3]:
        path.unlink()
    result = invoke("eval", "--data", root, "--checkpoint", checkpoint, "--onnx", onnx_path,
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 2
    assert "3 of 93 images are missing" in result.stderr and "kaggle layout" in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert "frames/s" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "torch"), "needs --checkpoint"),
        (("--backend", "onnx"), "needs --onnx"),
        (("--backend", "tflite"), "--backend takes"),
        (("--protocol", "3", "--backend", "torch", "--checkpoint", "CKPT"), "protocol 3"),
        (("--device", "tpu", "--backend", "torch", "--checkpoint", "CKPT"), "device must be"),
    ],
)
def test_eval_usage_errors_exit_2(data_root: Path, models, args, message: str) -> None:
    checkpoint, _ = models
    args = tuple(checkpoint if a == "CKPT" else a for a in args)
    result = invoke("eval", "--data", data_root, "--limit", "1", "--no-progress", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_eval_bad_data_root_exit_2(tmp_path: Path, models) -> None:
    checkpoint, _ = models
    result = invoke("eval", "--data", tmp_path, "--checkpoint", checkpoint, "--backend", "torch")
    assert result.exit_code == 2
    assert "no Human36M_subject*_data.json" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_eval_cuda_without_cuda_exit_2(data_root: Path, models) -> None:
    checkpoint, _ = models
    result = invoke("eval", "--data", data_root, "--checkpoint", checkpoint, "--backend", "torch",
                    "--device", "cuda", "--limit", "1", "--no-progress")  # fmt: skip
    assert result.exit_code == 2
    assert "--device cuda" in result.stderr


def test_json_says_what_was_judged_and_one_backend_has_no_verdict(
    data_root: Path, onnx_cache
) -> None:
    graph, _ = onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 0), exporter="torchscript")
    result = invoke("eval", "--data", data_root, "--onnx", graph, "--backend", "onnx",
                    "--limit", 4, "--no-progress", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["onnx"] == str(graph) and report["checkpoint"] is None
    assert report["weights"] == {"checkpoint": None, "graph": "random"}
    assert len(report["weights_sha256"]) == 64
    assert report["agree"] is None and report["comparison"] is None  # one backend: no verdict
    assert "random (seeded) weights" in result.stderr


def test_onnxruntime_logs_nothing_of_its_own(data_root: Path, models) -> None:
    """Its provider-loading errors go to the process's stderr, below Python: a real process."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "from converter.cli.main import main; main()", "eval",
               "--data", str(data_root), "--onnx", str(models[1]), "--backend", "onnx",
               "--device", "auto", "--limit", "2", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ":onnxruntime:" not in done.stderr and "EP Error" not in done.stdout + done.stderr
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        # --verbose lets the same failure through: the check above can see it.
        loud = [*command[:3], "--verbose", *command[3:]]
        done = subprocess.run(loud, capture_output=True, text=True, timeout=300)
        assert ":onnxruntime:" in done.stderr or torch.cuda.is_available()
