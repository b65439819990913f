"""The demo runs every step end to end (XS, the released weights, and a few frames)."""

from __future__ import annotations

from pathlib import Path

import cv2
from typer.testing import CliRunner

from converter.cli.main import app
from converter.evaluation.visualize import PHOTO_TILE


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--workdir", str(tmp_path / "demo"), "--variant", "XS", "--limit", "6"]
    )
    assert result.exit_code == 0, result.output
    steps = [line.split(" (")[0] for line in result.stdout.splitlines() if line.startswith("== ")]
    assert steps == [
        "== release",
        "== inspect",
        "== legacy",
        "== onnx",
        "== verify",
        "== photos",
        "== demo-data",
        "== eval",
    ]
    assert "== verify" in result.stdout and ": PASS" in result.stdout
    assert "agree within 0.1 mm" in result.stdout
    assert "released (the authors') weights" in result.stdout
    assert "2D joints on 4 real photos" in result.stdout
    written = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"ConvNeXtPose_XS.canonical.safetensors", "convnextpose_xs.onnx"} <= written
    picture = cv2.imread(str(tmp_path / "demo" / "photos_2d.png"))
    assert picture is not None and picture.shape[1] == 4 * PHOTO_TILE
