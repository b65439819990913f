"""Publishing outputs: no clobbering, umask modes, long names, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from converter.core.atomic import atomic_output, check_output_dir, make_output_dir, write_output
from converter.core.errors import OutputError, OutputExistsError


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
        "from converter.cli.main import Interrupted, _interrupt\n"
        "from converter.core.atomic import atomic_output\n"
        "signal.signal(signal.SIGTERM, _interrupt)\n"
        "try:\n"
        f"  with atomic_output(__import__('pathlib').Path({str(tmp_path / 'big.onnx')!r})) as t:\n"
        "    t.write_bytes(b'x' * 1000); print('writing', flush=True); time.sleep(60)\n"
        "except Interrupted as stop:\n"
        "  sys.exit(128 + stop.signum)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_is_never_an_input_or_a_file(tmp_path: Path) -> None:
    data = tmp_path / "h36m"
    (data / "images").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(data / "images")
    for inside in (data, data / "images" / "pred", link / "new"):  # resolved: the link too
        with pytest.raises(OutputExistsError, match="refusing to write inside the input"):
            check_output_dir(inside, (data,))
    a_file = tmp_path / "results.json"
    a_file.write_text("[]")
    with pytest.raises(OutputExistsError, match="exists and is not a directory"):
        check_output_dir(a_file, (data,), force=True)
    beside = tmp_path / "pred"
    assert check_output_dir(beside, (data,)) == beside and not beside.exists()


def test_an_output_folder_keeps_what_it_holds_without_force(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("x")
    names = ("a.json", "b.json")
    assert check_output_dir(tmp_path, names=names) == tmp_path  # other files do not matter
    (tmp_path / "b.json").write_text("old")
    with pytest.raises(
        OutputExistsError, match=r"b\.json: already exists; pass force to replace it"
    ):
        check_output_dir(tmp_path, names=names)
    assert check_output_dir(tmp_path, names=names, force=True) == tmp_path
    # outputs not known in advance: any content refuses
    with pytest.raises(OutputExistsError, match="is not empty; pass force"):
        check_output_dir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty) == empty


def test_an_unwritable_place_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"/proc/cnp/out: cannot create the folder"):
        make_output_dir(Path("/proc/cnp/out"))
    with pytest.raises(OutputError, match=r"/proc/out\.json: cannot write in /proc"):
        write_output(Path("/proc/out.json"), b"[]")
    out = write_output(make_output_dir(tmp_path / "a" / "b") / "x.json", b"[1]")
    assert out.read_bytes() == b"[1]"
    with pytest.raises(OutputExistsError):
        write_output(out, b"[2]")
    assert out.read_bytes() == b"[1]"
    assert write_output(out, b"[2]", overwrite=True).read_bytes() == b"[2]"


# --- several outputs published together ---------------------------------------------------------


def test_an_output_set_publishes_everything_or_nothing(tmp_path: Path) -> None:
    from converter.core.atomic import output_set

    a, b = tmp_path / "a.onnx", tmp_path / "a.ort"
    with output_set() as outputs:
        outputs.temporary(a).write_bytes(b"graph")
        outputs.temporary(b).write_bytes(b"ort")
    assert a.read_bytes() == b"graph" and b.read_bytes() == b"ort"

    c, d = tmp_path / "c.onnx", tmp_path / "c.ort"
    appeared = pytest.raises(OutputExistsError, match="appeared while it was being written")
    with appeared, output_set() as outputs:
        outputs.temporary(c).write_bytes(b"graph")
        outputs.temporary(d).write_bytes(b"ort")
        d.write_bytes(b"someone else's")  # appears before the set is published
    assert not c.exists() and d.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "a.ort", "c.ort"]

    with pytest.raises(RuntimeError), output_set() as outputs:
        outputs.temporary(tmp_path / "e.onnx").write_bytes(b"x")
        raise RuntimeError("the verdict failed")
    assert not (tmp_path / "e.onnx").exists() and len(list(tmp_path.iterdir())) == 3


def test_no_output_where_nothing_can_be_written() -> None:
    from converter.core.atomic import check_output_path

    with pytest.raises(OutputError, match="nothing can be written in /proc"):
        check_output_path(Path("/proc/out.onnx"))
    with pytest.raises(OutputError, match="nothing can be written in /proc"):
        check_output_dir(Path("/proc/cnp/predictions"))
