"""`cnp-convert inspect` and `cnp-convert legacy` end to end, through the Typer app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from converter.checkpoints.fabricate import seeded_state_dict, unzip_release
from converter.cli.main import app
from converter.core.variants import VARIANTS, get_variant

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_inspect_says_l_with_its_evidence(release_file) -> None:
    result = invoke("inspect", release_file("L"))
    assert result.exit_code == 0, result.output
    assert "variant    ConvNeXtPose-L" in result.stdout
    assert "stem 48 ch" in result.stdout and "head 512" in result.stdout
    assert "depth_dim 64" in result.stdout
    assert "archive prefix snapshot_83.pth/" in result.stdout
    assert "epoch      83" in result.stdout


def test_inspect_json_fields(release_file) -> None:
    result = invoke("inspect", release_file("L"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["variant"] == "L"
    assert report["epoch"] == 83
    assert report["head_naming"] == "legacy-numbered"
    assert report["keys_renamed"] == 27
    assert report["tensors"] == 260
    assert report["parameters"] == 8_380_352
    assert report["elements"] == 8_391_354
    assert report["heatmap"] == [64, 64, 64]
    assert report["warnings"] == []


def test_inspect_warns_when_the_name_lies(release_file, tmp_path: Path) -> None:
    liar = tmp_path / "ConvNeXtPose_XS.tar"
    shutil.copyfile(release_file("L"), liar)
    result = invoke("inspect", liar, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["variant"] == "L"
    assert "warning: the file name says XS but the tensors are ConvNeXtPose-L" in result.stderr
    assert "XS has a 40-ch stem" in result.stderr


def test_legacy_with_wrong_variant_explains_and_writes_nothing(release_file, tmp_path) -> None:
    snapshot = tmp_path / "snapshot_83.pth"
    shutil.copyfile(release_file("L"), snapshot)
    out = tmp_path / "out.safetensors"
    result = invoke("legacy", snapshot, "--variant", "XS", "-o", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "variant XS was asked for, but the tensors are ConvNeXtPose-L" in result.stderr
    assert "stem 48 ch" in result.stderr and "XS has a 40-ch stem" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot_83.pth"]


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("form", ["tar", "directory"])
def test_every_form_and_variant_canonicalizes_bit_for_bit(
    release_file, tmp_path: Path, name: str, form: str
) -> None:
    source = release_file(name)
    if form == "directory":
        source = unzip_release(source, tmp_path / "unzipped")
    inspected = invoke("inspect", source, "--json")
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.stdout)["variant"] == name

    out = tmp_path / f"{name}.safetensors"
    result = invoke("legacy", source, "-o", out, "--variant", name)
    assert result.exit_code == 0, result.output
    expected = seeded_state_dict(get_variant(name))
    with safe_open(str(out), "pt") as f:
        assert sorted(f.keys()) == sorted(expected)
        for key in expected:
            assert torch.equal(f.get_tensor(key), expected[key]), key
        header = f.metadata()
    assert header["variant"] == name
    assert header["head_naming"] == ("legacy-numbered" if name in ("M", "L") else "official")
    assert header["upsample"] == ",".join("true" if u else "false" for u in VARIANTS[name].upsample)
    assert header["epoch"] == {"XS": "68", "S": "67", "M": "69", "L": "83"}[name]
    assert len(header["source_sha256"]) == 64


def test_canonical_file_reinspects_with_its_source_facts(release_file, tmp_path: Path) -> None:
    source = release_file("XS")
    out = tmp_path / "xs.safetensors"
    assert invoke("legacy", source, "-o", out).exit_code == 0
    original = json.loads(invoke("inspect", source, "--json").stdout)
    again = json.loads(invoke("inspect", out, "--json").stdout)
    assert again["container"] == "safetensors"
    for key in ("variant", "epoch", "head_naming", "weights_sha256", "keys_renamed"):
        assert again[key] == original[key], key


def test_legacy_pth_format(release_file, tmp_path: Path) -> None:
    out = tmp_path / "xs.pth"
    result = invoke("legacy", release_file("XS"), "-o", out, "--format", "pth", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "pth"
    saved = torch.load(out, weights_only=True)
    assert saved["cnp_metadata"]["variant"] == "XS"
    assert set(saved["state_dict"]) == set(seeded_state_dict(get_variant("XS")))


def test_existing_output_needs_force(release_file, tmp_path: Path) -> None:
    out = tmp_path / "xs.safetensors"
    out.write_bytes(b"keep me")
    result = invoke("legacy", release_file("XS"), "-o", out)
    assert result.exit_code == 2
    assert "already exists; pass --force" in result.stderr
    assert out.read_bytes() == b"keep me"
    assert invoke("legacy", release_file("XS"), "-o", out, "--force").exit_code == 0
    assert out.stat().st_size > 1_000_000


def test_input_is_never_overwritten(release_file, tmp_path: Path) -> None:
    source = tmp_path / "ConvNeXtPose_XS.tar"
    shutil.copyfile(release_file("XS"), source)
    before = source.read_bytes()
    result = invoke("legacy", source, "-o", source, "--force")
    assert result.exit_code == 2
    assert "refusing to write over or inside the input" in result.stderr
    assert source.read_bytes() == before


def test_bad_format_is_a_usage_error(release_file, tmp_path: Path) -> None:
    result = invoke("legacy", release_file("XS"), "-o", tmp_path / "x", "--format", "onnx")
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # Typer's boxed usage error
    assert "Invalid value for '--format'" in message and "'safetensors', 'pth'" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64, "JPEG"),
        (b'{"epoch": 3}', "JSON"),
    ],
)
def test_bad_files_give_one_line_and_exit_2(tmp_path: Path, content: bytes, expected: str) -> None:
    bad = tmp_path / "ConvNeXtPose_L.tar"
    bad.write_bytes(content)
    for command in (["inspect", bad], ["legacy", bad, "-o", tmp_path / "out.safetensors"]):
        result = invoke(*command)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {bad}")
        assert expected in result.stderr
        assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ConvNeXtPose_L.tar"]


def test_checkpoint_with_a_missing_tensor_is_refused(tmp_path: Path) -> None:
    state = seeded_state_dict(get_variant("XS"))
    del state["backbone.stages.1.0.dwconv.bias"]
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": state}, path)
    result = invoke("legacy", path, "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 2
    assert f"error: {path}: does not match ConvNeXtPose-XS: 1 missing tensor(s)" in result.stderr
    assert not (tmp_path / "out.safetensors").exists()


def test_checkpoint_with_an_extra_tensor_is_refused(tmp_path: Path) -> None:
    state = {"module." + k: v for k, v in seeded_state_dict(get_variant("XS")).items()}
    state["module.head.aux_layer.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save({"network": state, "epoch": 1}, path)
    result = invoke("inspect", path)
    assert result.exit_code == 2
    assert "1 unexpected tensor(s) (first: head.aux_layer.weight)" in result.stderr


def test_resnet_state_dict_is_refused(tmp_path: Path) -> None:
    resnet = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "bn1.weight": torch.ones(64),
        "fc.weight": torch.zeros(1000, 512),
    }
    path = tmp_path / "resnet18.pth"
    torch.save(resnet, path)
    result = invoke("inspect", path)
    assert result.exit_code == 2
    assert "not a ConvNeXtPose state dict" in result.stderr
    assert "conv1.weight" in result.stderr


def test_variants_json_lists_params() -> None:
    result = invoke("variants", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [(r["name"], r["params"]) for r in rows] == [
        ("XS", 3_528_008),
        ("S", 7_438_976),
        ("M", 7_587_008),
        ("L", 8_380_352),
    ]


def test_legacy_does_not_pass_a_lying_name_on(release_file, tmp_path, monkeypatch) -> None:
    """ConvNeXtPose_XS.tar holding L: the default output is named for L, with a warning; an
    honest name keeps its stem."""
    liar = tmp_path / "ConvNeXtPose_XS.tar"
    shutil.copyfile(release_file("L"), liar)
    monkeypatch.chdir(tmp_path)
    result = invoke("legacy", liar)
    assert result.exit_code == 0, result.output
    assert "ConvNeXtPose_XS.tar says XS, its tensors are ConvNeXtPose-L" in result.stderr
    assert (tmp_path / "ConvNeXtPose_L.canonical.safetensors").is_file()
    assert not (tmp_path / "ConvNeXtPose_XS.canonical.safetensors").exists()
    honest = tmp_path / "ConvNeXtPose_L_copy.tar"
    shutil.copyfile(release_file("L"), honest)
    result = invoke("legacy", honest)
    assert result.exit_code == 0 and "says" not in result.stderr
    assert (tmp_path / "ConvNeXtPose_L_copy.canonical.safetensors").is_file()
