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
    assert len(list((tmp_path / "vis").glob("*.png"))) == 6 + 1  # frames, worst-frame sheet


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
    strict = invoke(*common, "--max-delta-mm", "1e-9")
    assert strict.exit_code == 1
    assert "differ by" in strict.stderr and "1e-09 mm allowed" in strict.stderr
    failed = json.loads(strict.stdout)  # the report, with the error and its exit code added
    assert failed["agree"] is False and failed["exit_code"] == 1
    assert "differ by" in failed["error"]


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
        (("--backend", "torch"), "needs weights; pass --checkpoint, or --variant V for seeded"),
        (("--backend", "onnx"), "needs a graph; pass --onnx"),
        (("--backend", "tflite"), "Invalid value for '--backend': 'tflite': a comma list of"),
        (("--backend", "torch,"), "needs weights; pass --checkpoint, or --variant V"),
        (("--protocol", "3", "--backend", "torch", "--checkpoint", "CKPT"), "equal to 2"),
        (("--device", "tpu", "--backend", "torch", "--checkpoint", "CKPT"), "'--device'"),
    ],
)
def test_eval_usage_errors_exit_2(data_root: Path, models, args, message: str) -> None:
    checkpoint, _ = models
    args = tuple(checkpoint if a == "CKPT" else a for a in args)
    result = invoke("eval", "--data", data_root, "--limit", "1", "--no-progress", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.replace("│", " ").split())


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
    assert "CUDA asked for" in result.stderr


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

    command = [sys.executable, "-m", "cnp_convert", "eval",
               "--data", str(data_root), "--onnx", str(models[1]), "--backend", "onnx",
               "--device", "auto", "--limit", "2", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ":onnxruntime:" not in done.stderr and "EP Error" not in done.stdout + done.stderr
    assert "warning: onnxruntime runs on CPU" not in done.stderr  # auto asked for no CUDA
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        # auto does not even try a provider that cannot load. Asked for CUDA, onnxruntime
        # tries and logs its failure: silent by default, and --verbose lets it through, so the
        # check above can see such lines.
        cuda = [*command[:-5], "--device", "cuda", *command[-3:]]
        quiet = subprocess.run(cuda, capture_output=True, text=True, timeout=300)
        loud = subprocess.run(
            [*cuda[:3], "--verbose", *cuda[3:]], capture_output=True, text=True, timeout=300
        )
        if not torch.cuda.is_available():
            assert quiet.returncode == 2 and ":onnxruntime:" not in quiet.stderr
            assert ":onnxruntime:" in loud.stderr


# --- where results go, and --skip-missing --------------------------------------------------------


def _one_line_error(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def _eval_torch(data_root: Path, checkpoint: Path, *args: object):
    return invoke("eval", "--data", data_root, "--checkpoint", checkpoint, "--backend", "torch",
                  "--device", "cpu", "--no-progress", "--no-flip", *args)  # fmt: skip


@pytest.mark.parametrize("option", ["--predictions", "--vis"])
def test_results_are_never_written_inside_the_dataset(data_root: Path, tmp_path, option) -> None:
    # refused before the checkpoint is even read: a path that does not exist is never opened
    missing = tmp_path / "never-read.pth"
    link = tmp_path / "link"
    link.symlink_to(data_root / "S9_ACT2_16")
    for target in (data_root / "results", link / "results"):
        result = _eval_torch(data_root, missing, option, target)
        _one_line_error(result, "refusing to write inside the input", str(data_root))
        assert not (data_root / "results").exists() and not (link / "results").exists()


def test_predictions_naming_a_file_is_one_line(data_root: Path, tmp_path: Path) -> None:
    existing = tmp_path / "results.json"
    existing.write_text("[]")
    result = _eval_torch(data_root, tmp_path / "never-read.pth", "--predictions", existing)
    _one_line_error(result, f"{existing}: exists and is not a directory")
    assert existing.read_text() == "[]"


def test_earlier_results_are_kept_without_force(data_root, release_file, tmp_path) -> None:
    checkpoint = release_file("XS")
    earlier = tmp_path / "pred" / RESULT_FILE.format(backend="torch")
    earlier.parent.mkdir()
    earlier.write_text("earlier")
    (tmp_path / "vis").mkdir()
    (tmp_path / "vis" / "notes.txt").write_text("mine")
    result = _eval_torch(data_root, checkpoint, "--limit", 1, "--predictions", tmp_path / "pred")
    _one_line_error(result, f"{earlier}: already exists; pass --force")
    assert "frames/s" not in result.stdout and earlier.read_text() == "earlier"
    result = _eval_torch(data_root, checkpoint, "--limit", 1, "--vis", tmp_path / "vis")
    _one_line_error(result, "vis: is not empty; pass --force")
    result = _eval_torch(data_root, checkpoint, "--limit", 1, "--predictions", tmp_path / "pred",
                         "--vis", tmp_path / "vis", "--force")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(json.loads(earlier.read_text())) == 1
    assert (tmp_path / "vis" / "notes.txt").read_text() == "mine"
    assert len(list((tmp_path / "vis").glob("*.png"))) == 1 + 1  # the frame and the sheet


def test_skip_missing_lists_what_it_skipped(data_root, release_file, tmp_path) -> None:
    root = tmp_path / "partial"
    shutil.copytree(data_root, root)
    removed = sorted((root / "S9_ACT2_16").rglob("*.jpg"))[:7]
    for path in removed:
        path.unlink()
    refused = _eval_torch(root, release_file("XS"))
    _one_line_error(refused, "7 of 93 images are missing", "--skip-missing")
    result = _eval_torch(root, release_file("XS"), "--skip-missing", "--limit", 2, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(report["skipped_missing"]) == [str(p) for p in removed]
    assert report["frames"] == 2
    warning = result.stderr.strip()
    assert warning.startswith("warning: skipped 7 test frames")
    assert (
        sum(str(p) in warning for p in removed) == 5 and "the JSON result lists them all" in warning
    )
    text = _eval_torch(root, release_file("XS"), "--skip-missing", "--limit", 2)
    assert text.exit_code == 0 and "Protocol 2 MPJPE" in text.stdout
    for path in sorted(root.rglob("*.jpg")):
        path.unlink()
    none_left = _eval_torch(root, release_file("XS"), "--skip-missing")
    _one_line_error(none_left, "93 of 93 images are missing", "nothing to evaluate")


def test_demo_data_under_an_unwritable_place_is_one_line() -> None:
    result = invoke("demo-data", "/proc/cnp-demo-data")
    _one_line_error(result, "/proc/cnp-demo-data")
    assert "Traceback" not in result.output


def test_impossible_annotations_stop_before_inference(data_root, release_file, tmp_path) -> None:
    root = tmp_path / "bad"
    shutil.copytree(data_root, root)
    cameras_path = root / "annotations (1)" / "annotations" / "Human36M_subject11_camera.json"
    cameras = json.loads(cameras_path.read_text())
    cameras["3"]["f"] = [0.0, 0.0]
    cameras_path.write_text(json.dumps(cameras))
    result = _eval_torch(root, release_file("XS"))
    _one_line_error(result, f"{cameras_path}: camera 3: focal length f [0, 0] must be positive")
    assert result.stdout == ""


def test_eval_with_the_variant_alone_uses_the_seeded_weights(data_root: Path, onnx_cache) -> None:
    """As onnx, verify and bench do: --variant without --checkpoint is the seeded random weights,
    the same ones `onnx --variant` exports (so the graph's weights digest matches, no warning)."""
    graph, _ = onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 0))
    result = invoke("eval", "--data", data_root, "--variant", "XS", "--onnx", graph, "--limit", 2,
                    "--device", "cpu", "--no-progress", "--no-flip", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["agree"] is True and report["weights"] == {
        "checkpoint": "random",
        "graph": "random",
    }
    assert "random (seeded) weights" in result.stderr and "other weights" not in result.stderr


def test_results_where_nothing_can_be_written_are_refused_before_the_run(
    data_root: Path, models
) -> None:
    """/proc takes no files, even from root: found before any frame is read, not after."""
    for flag in ("--predictions", "--vis"):
        result = invoke(
            "eval", "--data", data_root, "--onnx", models[1], "--backend", "onnx", flag,
            "/proc/cnp-results",
        )  # fmt: skip
        _one_line_error(result, "nothing can be written in /proc")


def test_predictions_and_pictures_are_published_together(
    data_root: Path, models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the pictures are drawn (or an interrupt) publishes none of the set:
    predictions used to be kept beside the old pictures."""
    from converter.evaluation import visualize
    from converter.evaluation.run import EvalOptions, plan_evaluation, run_evaluation

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C would, half-way through the outputs

    options = EvalOptions(
        data=data_root, onnx=models[1], backend=("onnx",), limit=2, device="cpu",
        predictions=tmp_path / "pred", vis=tmp_path / "vis", flip=False,
    )  # fmt: skip
    plan = plan_evaluation(options)
    monkeypatch.setattr(visualize, "contact_sheet", broken)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(plan)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    done = run_evaluation(plan)
    assert len(done.predictions) == 1 and len(done.pictures) == 3
