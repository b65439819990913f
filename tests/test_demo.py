"""The demo runs every step end to end (XS, the released weights, and a few frames)."""

from __future__ import annotations

from pathlib import Path

import cv2
from typer.testing import CliRunner

from converter.cli.main import app


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
        "== demo-data",
        "== eval",
        "== predict",
    ]
    assert "== verify" in result.stdout and ": PASS" in result.stdout
    assert "agree within 0.1 mm" in result.stdout
    assert "released (the authors') weights" in result.stdout
    assert "4 people on 4 real photos" in result.stdout
    written = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"ConvNeXtPose_XS.canonical.safetensors", "convnextpose_xs.onnx"} <= written
    predicted = tmp_path / "demo" / "predict"
    assert {p.name for p in predicted.iterdir()} == {"predictions.json"} | {
        f"0000{k}_{kind}.png" for k in range(4) for kind in ("2d", "3d")
    }
    picture = cv2.imread(str(predicted / "00001_2d.png"))
    assert picture is not None and picture.shape[1] == 512  # a 256-px photo, drawn at 2x
