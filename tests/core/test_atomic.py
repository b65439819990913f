"""Publishing outputs: no clobbering, umask modes, long names, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from converter.core.atomic import atomic_output
from converter.core.errors import OutputExistsError


def test_publishes_with_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with atomic_output(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_file_that_appears_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    with pytest.raises(OutputExistsError, match="appeared while"), atomic_output(out) as tmp:
        tmp.write_bytes(b"new")
        out.write_bytes(b"someone else's")
    assert out.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new"


def test_a_long_valid_name_fits(tmp_path: Path) -> None:
    out = tmp_path / ("m" * 240 + ".onnx")  # 245 characters: valid, the temporary name too
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"x")
    assert out.read_bytes() == b"x"


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "x") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("check failed")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_a_write_leaves_no_partial_file(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "from converter.cli.main import _exit_on_sigterm\n"
        "from converter.core.atomic import atomic_output\n"
        "signal.signal(signal.SIGTERM, _exit_on_sigterm)\n"
        f"with atomic_output(__import__('pathlib').Path({str(tmp_path / 'big.onnx')!r})) as t:\n"
        "    t.write_bytes(b'x' * 1000); print('writing', flush=True); time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
