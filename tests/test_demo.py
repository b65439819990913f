"""The demo runs every step end to end (XS, the trained stand-in, and a few frames)."""

from __future__ import annotations

from pathlib import Path

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
    ]
    assert "== verify" in result.stdout and ": PASS" in result.stdout
    assert "agree within 0.1 mm" in result.stdout
    assert "trained stand-in weights" in result.stdout and "mean-pose baseline" in result.stdout
    written = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"ConvNeXtPose_XS.canonical.safetensors", "convnextpose_xs.onnx"} <= written
