"""`cnp-convert onnx` and `cnp-convert verify` end to end, through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from stacked import stacked_rows
from typer.testing import CliRunner

from converter.cli.main import app
from converter.graphs.metadata import read_onnx_metadata

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """Typer's boxed usage error as one line."""
    return " ".join(text.replace("│", " ").split())


@pytest.fixture(scope="module")
def xs_cli_onnx(tmp_path_factory, release_file) -> Path:
    """The default export path through the CLI (torchscript, opset 18, dynamic batch)."""
    out = tmp_path_factory.mktemp("cli") / "xs.onnx"
    result = invoke("onnx", "--checkpoint", release_file("XS"), "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}")
    assert "parity (onnxruntime CPU) batch 2: coords: max abs" in result.stdout
    assert "within limit" in result.stdout
    assert "Resize 2 (linear/align_corners), Range none, final conv 576 channels" in result.stdout
    return out


def test_onnx_then_verify(xs_cli_onnx: Path, release_file) -> None:
    meta = read_onnx_metadata(xs_cli_onnx)
    assert meta.variant == "XS" and meta.weights == "trained"
    result = invoke("verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--samples", 4)
    assert result.exit_code == 0, result.output
    # the fp32 table, stacked (wider than 100 columns): batch, output, ..., verdict
    rows = stacked_rows(result.stdout, "batch")
    assert [(r["batch"], r["output"]) for r in rows] == [("1", "coords"), ("4", "coords")]
    assert all(r["verdict"] == "within limit" for r in rows)
    assert all(r["worst element (graph vs float64)"].startswith("[") for r in rows)
    assert "PyTorch fp32 floor" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("PASS")


def test_verify_json(xs_cli_onnx: Path, release_file) -> None:
    result = invoke(
        "verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--batch", "2", "--samples",
        2, "--device", "cpu", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["batches"] == [2]
    assert report["providers"] == ["CPUExecutionProvider"]
    coords = report["results"][0]["outputs"][0]
    assert coords["name"] == "coords" and coords["error"] <= coords["limit"]
    assert set(coords) >= {"floor", "error", "limit", "rule", "worst_joint", "passed"}
    assert report["precision"] == "fp32" and isinstance(report["seed"], int)


@pytest.mark.parametrize("atol", ["-1", "nan", "0", "inf"])
def test_bad_atol_exit_2(xs_cli_onnx: Path, release_file, atol: str) -> None:
    result = invoke("verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--atol", atol)
    assert result.exit_code == 2 and "positive finite" in result.stderr
    out = xs_cli_onnx.parent / "never.onnx"
    result = invoke("onnx", "--variant", "XS", "-o", out, "--atol", atol)
    assert result.exit_code == 2 and not out.exists()


def test_verify_failure_prints_report_then_exits_1(xs_cli_onnx: Path, release_file) -> None:
    result = invoke(
        "verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--atol", "1e-12",
        "--batch", "1", "--samples", 1, "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # the evidence, still one parseable document
    assert report["passed"] is False
    assert report["exit_code"] == 1 and "parity failed" in report["error"]
    assert "error:" in result.stderr and "parity failed" in result.stderr


def test_a_refused_export_says_nothing_was_written(tmp_path: Path, release_file) -> None:
    out = tmp_path / "fail.onnx"
    args = ("onnx", "--checkpoint", release_file("XS"), "-o", out, "--atol", "1e-12", "--seed", 3)
    result = invoke(*args)
    assert result.exit_code == 1 and not out.exists()
    assert result.stdout.startswith(f"refused {out}: the verdict failed, nothing written")
    assert "wrote" not in result.stdout
    report = json.loads(invoke(*args, "--json").stdout)
    assert report["written"] is False and report["path"] is None and report["size_bytes"] is None
    assert not out.exists()


def test_onnx_json_output(tmp_path: Path, release_file) -> None:
    out = tmp_path / "ts.onnx"
    result = invoke(
        "onnx", "--checkpoint", release_file("XS"), "-o", out, "--exporter", "torchscript",
        "--batch", "1", "--heatmaps", "--simplify", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["simplified"] is True
    assert report["outputs"] == ["coords", "heatmaps"] and report["batch"] == "1"
    assert report["graph"]["resize_count"] == 2 and report["graph"]["has_range"] is False
    assert report["graph"]["output_shapes"]["heatmaps"] == [1, 576, 32, 32]


def test_variant_alone_exports_random_weights_with_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "random.onnx"
    result = invoke(
        "onnx", "--variant", "xs", "-o", out, "--exporter", "torchscript", "--no-rewrite"
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "RANDOM weights" in result.stderr
    assert read_onnx_metadata(out).weights == "random"
    assert "rewrites none" in result.stdout  # --no-rewrite: the literal head
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["rewrites"]) == []
    assert [n.op_type for n in onnx.load(str(out)).graph.node].count("ReduceSum") == 6
    # ...and verify recreates the same seeded weights from --variant alone.
    result = invoke("verify", out, "--variant", "XS", "--batch", "1", "--samples", 1)
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.stderr
    # The literal soft-argmax's coords are not divided by their mass: their limit holds the
    # softmax sums' rounding bound (the rewritten graph's does not: tests/export).
    assert "rounding bound" in result.stdout and "sum bound" in result.stdout


def test_variant_disagreeing_with_checkpoint_writes_nothing(tmp_path: Path, release_file) -> None:
    out = tmp_path / "l.onnx"
    result = invoke("onnx", "--checkpoint", release_file("XS"), "--variant", "L", "-o", out)
    assert result.exit_code == 2
    assert "error:" in result.stderr and "variant L was asked for" in result.stderr
    assert "stem 40 ch" in result.stderr  # the evidence
    assert not out.exists()


def test_existing_output_needs_force(tmp_path: Path, release_file) -> None:
    out = tmp_path / "taken.onnx"
    out.write_text("mine")
    result = invoke("onnx", "--checkpoint", release_file("XS"), "-o", out)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert out.read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --checkpoint"),
        (("--variant", "XS", "--batch", "lots"), "--batch"),
    ],
)
def test_onnx_usage_errors(tmp_path: Path, args: tuple, message: str) -> None:
    result = invoke("onnx", *args, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [("--variant", "XS", "--exporter", "tflite"), ("--variant", "XXL")]
)
def test_onnx_bad_choices_are_typer_usage_errors(tmp_path: Path, args: tuple) -> None:
    result = invoke("onnx", *args, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and f"Invalid value for '{args[-2]}'" in flat(result.stderr)
    assert f"'{args[-1]}' is not one of" in flat(result.stderr)
    assert not (tmp_path / "x.onnx").exists()


def test_verify_other_weights_exit_2(onnx_cache, release_file) -> None:
    other, _ = onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 1), exporter="torchscript")
    result = invoke("verify", other, "--checkpoint", release_file("XS"))
    assert result.exit_code == 2
    assert "exported from other weights" in result.stderr


def test_verify_other_variant_exit_2(xs_cli_onnx: Path) -> None:
    result = invoke("verify", xs_cli_onnx, "--variant", "S")
    assert result.exit_code == 2
    assert "variant S was asked for, but the graph's metadata says XS" in result.stderr
    assert "warning" not in result.stderr  # failed before building random weights


def test_verify_without_metadata(xs_cli_onnx: Path, release_file, tmp_path: Path) -> None:
    model = onnx.load(str(xs_cli_onnx))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    result = invoke("verify", bare, "--checkpoint", release_file("XS"))
    assert result.exit_code == 2 and "pass --variant" in result.stderr
    result = invoke(
        "verify", bare, "--checkpoint", release_file("XS"), "--variant", "XS", "--batch", "1",
        "--samples", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "no cnp-convert metadata" in result.stderr


@pytest.mark.parametrize("kind", ["corrupt", "text"])
def test_verify_bad_files(xs_cli_onnx: Path, release_file, tmp_path: Path, kind: str) -> None:
    bad = tmp_path / f"{kind}.onnx"
    if kind == "corrupt":
        bad.write_bytes(xs_cli_onnx.read_bytes()[:5000])
    else:
        bad.write_text("hello")
    result = invoke("verify", bad, "--checkpoint", release_file("XS"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and str(bad) in result.stderr


def test_verify_wrong_input_size(xs_cli_onnx: Path, release_file, tmp_path: Path) -> None:
    model = onnx.load(str(xs_cli_onnx))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = 192
    small = tmp_path / "small.onnx"
    onnx.save(model, str(small))
    result = invoke("verify", small, "--checkpoint", release_file("XS"))
    assert result.exit_code == 2 and "192x192" in result.stderr


def test_verify_usage_errors(xs_cli_onnx: Path, release_file) -> None:
    result = invoke("verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--batch", "1,x")
    assert result.exit_code == 2 and "--batch" in result.stderr
    result = invoke("verify", xs_cli_onnx)
    assert result.exit_code == 2 and "give --checkpoint" in result.stderr


def test_verify_cuda_without_cuda_exit_2(xs_cli_onnx: Path, release_file) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = invoke("verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--device", "cuda")
    assert result.exit_code == 2
    assert "CUDA asked for" in result.stderr


@pytest.mark.cuda
def test_verify_cuda(xs_cli_onnx: Path, release_file) -> None:
    import torch

    from converter.runtimes.sessions import open_onnx_session

    if not torch.cuda.is_available() or open_onnx_session(xs_cli_onnx, "auto").device != "cuda":
        pytest.skip("needs torch CUDA and a working onnxruntime CUDAExecutionProvider")
    result = invoke(
        "verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--device", "cuda", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["onnx_device"] == "cuda"
    assert report["providers"][0] == "CUDAExecutionProvider"


def test_bad_option_pairs_fail_fast_with_exit_2(tmp_path: Path) -> None:
    cases = [
        (("--opset", "13", "--exporter", "dynamo"), "dynamo exporter writes opset 18"),
        (("--opset", "21", "--exporter", "torchscript"), "torchscript exporter writes opset 20"),
        (("--opset", "99"), "exports opsets 11 to"),
        (("-o", tmp_path / "no" / "m.onnx"), "does not exist"),
        (("--exporter", "tf"), "Invalid value for '--exporter'"),
    ]
    for options, message in cases:
        result = invoke("onnx", "--variant", "XS", *options)
        assert result.exit_code == 2 and message in flat(result.stderr), (options, result.output)
        assert "RANDOM" not in result.stderr  # refused before any weights were made
    result = invoke("verify", tmp_path / "m.onnx", "--variant", "XS", "--device", "gpu")
    assert result.exit_code == 2 and "Invalid value for '--device'" in flat(result.stderr)


def test_old_opset_exports_and_loads_in_opencv_dnn(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from converter.core.variants import get_variant
    from converter.h36m.preprocess import normalize_images, seeded_images
    from converter.runtimes.sessions import open_onnx_session

    out = tmp_path / "o13.onnx"
    result = invoke("onnx", "--variant", "XS", "--opset", "13", "-o", out)
    assert result.exit_code == 0, result.output
    meta = read_onnx_metadata(out)
    assert meta.opset == 13 and meta.exporter == "torchscript"
    image = normalize_images(seeded_images(1, 5), get_variant("XS"))
    net = cv2.dnn.readNetFromONNX(str(out))
    net.setInput(image)
    coords = net.forward()
    expected = open_onnx_session(out, "cpu").run(image)["coords"]
    assert coords.shape == (1, 18, 3) and np.abs(coords - expected).max() < 1e-3


def test_verify_on_openvino_f32(xs_cli_onnx: Path, release_file) -> None:
    result = invoke(
        "verify", xs_cli_onnx, "--checkpoint", release_file("XS"), "--batch", "1", "--samples",
        2, "--runtime", "openvino", "--ov-precision", "f32", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runtime"] == "openvino" and report["execution_precision"] == "f32"
    assert report["precision"] == "fp32" and report["providers"][0].startswith("OpenVINO")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--runtime", "tensorflow"), "Invalid value for '--runtime'"),
        (("--runtime", "openvino", "--device", "cuda"), "runs on the CPU here"),
        (("--runtime", "tflite", "--device", "cuda"), "runs on the CPU here"),
        (("--runtime", "openvino", "--ov-precision", "int4"), "Invalid value for '--ov-precision'"),
    ],
)
def test_runtime_options_fail_before_any_work(
    xs_cli_onnx: Path, release_file, options: tuple, message: str
) -> None:
    result = invoke("verify", xs_cli_onnx, "--checkpoint", release_file("XS"), *options)
    assert result.exit_code == 2 and message in flat(result.stderr)
    result = invoke("bench", xs_cli_onnx, "--checkpoint", release_file("XS"), *options)
    assert result.exit_code == 2 and message in flat(result.stderr)


def test_bench_times_both_runtimes_in_one_run(xs_cli_onnx: Path, release_file) -> None:
    result = invoke(
        "bench", xs_cli_onnx, "--checkpoint", release_file("XS"), "--batch", "1", "--runs", 1,
        "--threads", 1, "--runtime", "onnxruntime,openvino,onnxruntime", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runtime"] == "onnxruntime"
    (row,) = report["rows"]
    assert [o["runtime"] for o in row["others"]] == ["openvino"]  # duplicates dropped
    assert row["others"][0]["label"] == "openvino graph"
    assert report["machine"]["cpu_features"] is not None


def test_verify_given_a_checkpoint_as_the_graph_says_so(tmp_path: Path, release_file) -> None:
    import torch

    from converter.checkpoints.released import RELEASED_FILE

    legacy = tmp_path / "old.pth"
    torch.save({"a": torch.zeros(1)}, legacy, _use_new_zipfile_serialization=False)
    folder = tmp_path / "unzipped"
    folder.mkdir()
    cases = {
        release_file("XS"): "a zip archive (torch.save's format)",
        RELEASED_FILE: "a safetensors file",
        legacy: "a pickle (torch.save's old format)",
    }
    for path, kind in cases.items():
        result = invoke("verify", path, "--variant", "XS")
        assert result.exit_code == 2, (path, result.output)
        assert result.stderr == (
            f"error: {path}: {kind}, which is a checkpoint's container, not an ONNX graph; "
            "pass --checkpoint with it, and the .onnx file as the graph\n"
        )
    result = invoke("verify", folder, "--variant", "XS")
    assert result.exit_code == 2 and "a folder (an unzipped checkpoint?)" in result.stderr
