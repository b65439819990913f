"""Property-based fuzzing of the checkpoint readers (Hypothesis).

Inputs are real fixtures (a release zip, a canonical safetensors file, an unzipped folder) with
their bytes or structure mutated. Each example is read in a forked child under a memory cap
(RLIMIT_AS) and a time cap (alarm): it must end in success or in a CheckpointError (exit 2 at the
command line), never another exception, never past the caps. CI runs a fixed small budget;
`just fuzz` runs a long one (CNP_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import tempfile
import traceback
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converter.checkpoints.canonical import canonicalize
from converter.checkpoints.fabricate import unzip_release
from converter.checkpoints.reader import read_checkpoint
from converter.checkpoints.writer import write_canonical
from converter.core.errors import ConverterError

EXAMPLES = int(os.environ.get("CNP_FUZZ_EXAMPLES", "25"))
MEMORY_CAP = 3 * 1024**3  # bytes of address space per example (torch alone maps ~1.5 GB)
TIME_CAP = 20  # seconds per example

OK, REFUSED, CRASHED, KILLED = 0, 2, 3, -1


def _read_in_child(path: Path) -> tuple[int, str]:
    """(outcome, detail): the reader run in a forked child with memory and time caps."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        code, detail = OK, ""
        try:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
            signal.alarm(TIME_CAP)
            canonicalize(read_checkpoint(path))
        except ConverterError as exc:
            code, detail = REFUSED, str(exc)
        except BaseException:  # anything else is a finding
            code, detail = CRASHED, traceback.format_exc()
        os.write(write_end, detail.encode()[:4000])
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        detail = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return KILLED, f"killed by signal {os.WTERMSIG(status)} (time or memory cap)"
    return os.WEXITSTATUS(status), detail


@pytest.fixture(scope="module")
def seeds(release_file, tmp_path_factory) -> dict[str, bytes | Path]:
    torch.set_num_threads(1)  # fork-safe: no intra-op thread pool to inherit
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    release = release_file("XS")
    canonical = folder / "xs.safetensors"
    write_canonical(canonicalize(read_checkpoint(release)), canonical)
    unzipped = unzip_release(release, folder / "unzipped")
    return {"zip": release, "safetensors": canonical, "folder": unzipped}


def _assert_contained(outcome: int, detail: str) -> None:
    assert outcome in (OK, REFUSED), detail
    if outcome == REFUSED:
        assert "\n" not in detail and detail  # one line, naming the file


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 50,  # the CI budget is the same examples every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    kind=st.sampled_from(["zip", "safetensors"]),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_bytes_are_read_or_refused(seeds, kind, edits, cut) -> None:
    data = bytearray(seeds[kind].read_bytes())
    # Most checkpoints are tensor bytes; edit the structured head and tail more often.
    for where, value in edits:
        region = where**3 if where < 0.5 else 1 - (1 - where) ** 3
        data[min(int(region * len(data)), len(data) - 1)] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    # One example's files at a time: a long run would otherwise keep thousands of copies.
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / f"case.{'pth' if kind == 'zip' else 'safetensors'}"
        path.write_bytes(bytes(data))
        _assert_contained(*_read_in_child(path))


@FUZZ
@given(
    action=st.sampled_from(["drop", "truncate", "swap", "rename", "extra", "pickle"]),
    pick=st.integers(0, 10_000),
    payload=st.binary(max_size=64),
)
def test_mutated_folders_are_read_or_refused(seeds, action, pick, payload) -> None:
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        folder = Path(tmp) / "snapshot"
        shutil.copytree(seeds["folder"], folder)
        _mutate_folder(folder, action, pick, payload)
        _assert_contained(*_read_in_child(folder))


def _mutate_folder(folder: Path, action: str, pick: int, payload: bytes) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    target = files[pick % len(files)]
    if action == "drop":
        target.unlink()
    elif action == "truncate":
        target.write_bytes(target.read_bytes()[: pick % (target.stat().st_size + 1)])
    elif action == "swap":
        other = files[(pick // 7) % len(files)]
        a, b = target.read_bytes(), other.read_bytes()
        target.write_bytes(b)
        other.write_bytes(a)
    elif action == "rename":
        target.rename(target.with_name(target.name + "x"))
    elif action == "extra":
        (target.parent / f"extra{pick}").write_bytes(payload)
    else:  # pickle: overwrite part of data.pkl
        pkl = folder / "data.pkl"
        raw = bytearray(pkl.read_bytes())
        start = pick % max(1, len(raw))
        raw[start : start + len(payload)] = payload
        pkl.write_bytes(bytes(raw))


def test_the_harness_sees_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path):
        raise KeyError("not a ConverterError")

    monkeypatch.setattr(f"{__name__}.read_checkpoint", broken)
    outcome, detail = _read_in_child(tmp_path / "any")
    assert outcome == CRASHED and "KeyError" in detail


def test_the_harness_enforces_the_memory_cap(tmp_path: Path, monkeypatch) -> None:
    def hungry(path):
        return bytearray(MEMORY_CAP * 2)

    monkeypatch.setattr(f"{__name__}.read_checkpoint", hungry)
    outcome, detail = _read_in_child(tmp_path / "any")
    assert outcome == CRASHED and "MemoryError" in detail


def test_zip_fixture_is_what_the_fuzzer_mutates(seeds) -> None:
    assert seeds["zip"].read_bytes()[:4] == b"PK\x03\x04" and zipfile.is_zipfile(seeds["zip"])
