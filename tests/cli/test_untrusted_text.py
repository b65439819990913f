"""Untrusted text never forges or floods a line: names and keys from files reach the terminal
escaped (newlines included) and capped (tests/cli/hostile_text.py makes the inputs)."""

from __future__ import annotations

from pathlib import Path

from hostile_text import FORGED_LINE, forged_name, long_key_checkpoint
from typer.testing import CliRunner

from converter.cli.app import MAX_LINE_CHARS, printable
from converter.cli.main import app

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_printable_escapes_newlines_and_caps_length() -> None:
    assert printable("a\nb\rc\x1b[2J") == "a\\nb\\rc\\x1b[2J"
    just_inside = "x" * MAX_LINE_CHARS
    assert printable(just_inside) == just_inside
    outside = printable("x" * (MAX_LINE_CHARS + 1))
    assert outside == "x" * MAX_LINE_CHARS + "... (1 more characters)"


def test_a_file_name_cannot_print_a_passing_line(tmp_path: Path) -> None:
    out = forged_name(tmp_path, "fail.onnx")
    result = invoke("onnx", "--variant", "XS", "--atol", "1e-12", "-o", out, "--seed", "1")
    assert result.exit_code == 1, result.output
    assert FORGED_LINE not in result.stdout.splitlines()
    assert FORGED_LINE not in result.stderr.splitlines()
    assert "\\n" + FORGED_LINE in result.stdout + result.stderr  # shown, escaped


def test_a_megabyte_key_is_not_printed_whole(tmp_path: Path) -> None:
    path = long_key_checkpoint(tmp_path)
    for command in ("inspect", "legacy"):
        result = invoke(command, path)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert len(line) < MAX_LINE_CHARS + 100 and "more characters)" in line
