"""`cnp-convert predict` through the Typer app: what it prints, writes and exits with."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from converter.checkpoints.released import load_released
from converter.cli.main import app
from converter.h36m.photos import PHOTO_DIR, photo_paths

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def graph(onnx_cache) -> Path:
    return onnx_cache.exported(load_released())[0]


def test_predict_prints_a_table_and_writes_pictures(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("predict", graph, PHOTO_DIR, "-o", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ConvNeXtPose-XS (trained weights) on cpu: 4 people in 4 images"
    assert lines[1].split()[:4] == ["image", "#", "crop", "x,y,w,h"]
    assert [line.split()[0] for line in lines[3:7]] == [p.name for p in photo_paths()]
    assert lines[-1] == f"wrote {out / 'predictions.json'} and 8 pictures beside it"
    assert "root-relative" in result.stderr and len(list(out.iterdir())) == 9


def test_predict_json_carries_every_number(graph: Path) -> None:
    photo = photo_paths()[1]
    result = invoke(
        "predict", graph, photo, "--box", "20,10,216,236", "--root-depth", "4500",
        "--focal", "1400,1400", "--princpt", "128,128", "--json", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (person,) = payload["images"][0]["people"]
    assert payload["focal_px"] == [1400.0, 1400.0] and payload["princpt_px"] == [128.0, 128.0]
    assert person["box"] == [20.0, 10.0, 216.0, 236.0] and person["space"] == "camera"
    assert len(payload["joint_names"]) == len(person["joints_3d_mm"]) == 18
    assert abs(person["joints_3d_mm"][0][2] - 4500) < 1000  # the root near its given depth
    assert payload["predictions_file"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--box", "10,10,0,50"], "has no area"),
        (["--box", "1,2,3"], "--box takes 4 comma-separated numbers"),
        (["--box", "a,b,c,d"], "--box takes 4 comma-separated numbers"),
        (["--focal", "1500"], "--focal takes 2 comma-separated numbers"),
        (["--focal", "0,1500"], "--focal takes two positive numbers"),
        (["--root-depth", "5000", "--root-depth", "6000"], "--root-depth needs one value per box"),
        (["--variant", "L"], "metadata says XS"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    graph: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = invoke("predict", graph, photo_paths()[0], "-o", out, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_box_with_a_folder_names_the_flag(graph: Path) -> None:
    result = invoke("predict", graph, PHOTO_DIR, "--box", "0,0,10,10")
    assert result.exit_code == 2 and "--box applies to one image file" in result.stderr


def test_a_graph_without_metadata_asks_for_the_variant(graph: Path, tmp_path: Path) -> None:
    model = onnx.load(str(graph))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    refused = invoke("predict", bare, photo_paths()[0])
    assert refused.exit_code == 2 and "no cnp-convert metadata" in refused.stderr
    assert "--variant" in refused.stderr
    given = invoke("predict", bare, photo_paths()[0], "--variant", "XS", "--json")
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)["weights"] == "unknown"


def test_existing_outputs_are_kept_without_force(graph: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("predict", graph, photo_paths()[0], "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = invoke("predict", graph, photo_paths()[0], "-o", out)
    assert again.exit_code == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert invoke("predict", graph, photo_paths()[0], "-o", out, "--force").exit_code == 0


def test_a_huge_declared_image_is_refused_unread(graph: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + (30000).to_bytes(4, "big") * 2)
    result = invoke("predict", graph, bomb)
    assert result.exit_code == 2 and "declares 30000 x 30000 pixels" in result.stderr


def test_an_output_where_nothing_can_be_written_is_refused_first(graph: Path) -> None:
    result = invoke("predict", graph, photo_paths()[0], "-o", "/proc/cnp-predict")
    assert result.exit_code == 2 and "nothing can be written in /proc" in result.stderr
