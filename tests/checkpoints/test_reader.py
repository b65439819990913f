"""converter.checkpoints.reader: every form a checkpoint comes in, every way it can be wrong."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import shlex
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from converter.checkpoints.fabricate import RELEASE_EPOCH, release_payload, unzip_release
from converter.checkpoints.reader import RawCheckpoint, read_checkpoint
from converter.core.errors import CheckpointError, UnsafeCheckpointError

# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xs_file(release_file: Callable[[str], Path]) -> Path:
    return release_file("XS")


@pytest.fixture(scope="module")
def xs_stored(xs_file: Path) -> dict:
    """The object pickled in the fabricated XS release, read by torch directly (ground truth)."""
    return torch.load(xs_file, map_location="cpu", weights_only=True)


def assert_same_tensors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(actual) == list(expected)  # exact keys, untouched, in stored order
    for key, tensor in expected.items():
        got = actual[key]
        assert got.device.type == "cpu", key
        assert got.dtype == tensor.dtype and got.shape == tensor.shape, key
        assert torch.equal(got, tensor), key


def assert_one_line(exc: BaseException, path: Path) -> str:
    message = str(exc)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message and "\x1b" not in message, message
    return message


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


# --- the released form and its renamed / unzipped variants -------------------------------------


def test_release_tar_reads_network_as_stored(xs_file: Path, xs_stored: dict) -> None:
    raw = read_checkpoint(xs_file)
    assert isinstance(raw, RawCheckpoint)
    assert raw.path == xs_file
    assert raw.container == "torch-zip"
    assert raw.archive_prefix == "snapshot_68.pth"
    assert raw.wrapper == "epoch/network/optimizer"
    assert raw.epoch == 68
    assert raw.header_metadata == {}
    assert raw.sha256 == file_sha256(xs_file)
    assert raw.size_bytes == xs_file.stat().st_size
    assert_same_tensors(raw.tensors, xs_stored["network"])
    assert all(key.startswith("module.") for key in raw.tensors)  # no renaming here
    with pytest.raises(Exception):  # noqa: B017 - frozen: any assignment must fail
        raw.epoch = 1  # type: ignore[misc]


def test_release_tar_matches_fabricated_weights_bit_for_bit(xs_file: Path) -> None:
    assert_same_tensors(read_checkpoint(xs_file).tensors, release_payload("XS")["network"])


@pytest.mark.parametrize("name", ["snapshot_68.pth", "ConvNeXtPose_XS.pth.tar", "weights"])
def test_any_file_name_loads(name: str, xs_file: Path, xs_stored: dict, tmp_path: Path) -> None:
    renamed = tmp_path / name
    shutil.copyfile(xs_file, renamed)
    raw = read_checkpoint(str(renamed))  # str paths are accepted too
    assert raw.path == renamed
    assert raw.container == "torch-zip"
    assert raw.archive_prefix == "snapshot_68.pth"  # the prefix is inside, not the name
    assert raw.epoch == 68
    assert raw.sha256 == file_sha256(xs_file)
    assert_same_tensors(raw.tensors, xs_stored["network"])


def test_unzipped_directory_loads_in_place(xs_file: Path, xs_stored: dict, tmp_path: Path) -> None:
    records = unzip_release(xs_file, tmp_path / "unzipped")
    assert records.name == "snapshot_68.pth"
    before = tree_state(tmp_path)

    direct = read_checkpoint(records)
    via_parent = read_checkpoint(tmp_path / "unzipped")

    assert tree_state(tmp_path) == before  # nothing written, nothing touched
    for raw in (direct, via_parent):
        assert raw.container == "unzipped-directory"
        assert raw.archive_prefix == "snapshot_68.pth"
        assert raw.wrapper == "epoch/network/optimizer"
        assert raw.epoch == 68
        assert_same_tensors(raw.tensors, xs_stored["network"])
    assert direct.path == records and via_parent.path == tmp_path / "unzipped"

    files = sorted(p for p in records.rglob("*") if p.is_file())
    assert {p.relative_to(records).as_posix() for p in files} >= {"data.pkl", "version", "data/0"}
    digest = hashlib.sha256()
    for relative in sorted(p.relative_to(records).as_posix() for p in files):
        content = (records / relative).read_bytes()
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    assert direct.sha256 == via_parent.sha256 == digest.hexdigest()
    assert direct.size_bytes == sum(p.stat().st_size for p in files)


def test_dot_directory_gets_its_real_name(xs_file: Path, tmp_path: Path, monkeypatch) -> None:
    records = unzip_release(xs_file, tmp_path)
    monkeypatch.chdir(records)
    assert read_checkpoint(".").archive_prefix == "snapshot_68.pth"


def test_release_l_prefix_and_epoch(release_file: Callable[[str], Path]) -> None:
    path = release_file("L")
    raw = read_checkpoint(path)
    assert raw.archive_prefix == "snapshot_83.pth"
    assert raw.epoch == RELEASE_EPOCH["L"] == 83
    assert raw.wrapper == "epoch/network/optimizer"
    stored = torch.load(path, map_location="cpu", weights_only=True)["network"]
    assert_same_tensors(raw.tensors, stored)
    assert "module.head.deconv_layers_1.0.weight" in raw.tensors  # legacy names kept as stored


def test_release_m_archive_prefix(release_file: Callable[[str], Path]) -> None:
    raw = read_checkpoint(release_file("M"))
    assert raw.container == "torch-zip"
    assert raw.archive_prefix == "archive"
    assert raw.epoch == RELEASE_EPOCH["M"]
    assert len(raw.tensors) == 260


# --- other containers and wrappers ---------------------------------------------------------------


def test_legacy_non_zip_format(xs_stored: dict, tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    torch.save(xs_stored, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    raw = read_checkpoint(path)
    assert raw.container == "torch-legacy"
    assert raw.archive_prefix is None
    assert raw.wrapper == "epoch/network/optimizer"
    assert raw.epoch == 68
    assert raw.sha256 == file_sha256(path)
    assert_same_tensors(raw.tensors, xs_stored["network"])


def test_state_dict_wrapper_with_metadata(xs_stored: dict, tmp_path: Path) -> None:
    path = tmp_path / "canonical.pth"
    metadata = {"variant": "XS", "epoch": "68", "source_sha256": "ab" * 32}
    torch.save({"state_dict": xs_stored["network"], "cnp_metadata": metadata}, path)
    raw = read_checkpoint(path)
    assert raw.container == "torch-zip" and raw.archive_prefix == "canonical"
    assert raw.wrapper == "state_dict"
    assert raw.header_metadata == metadata
    assert raw.epoch == 68  # no 'epoch' key: taken from the metadata
    assert_same_tensors(raw.tensors, xs_stored["network"])


@pytest.mark.parametrize(
    ("wrap", "wrapper", "epoch"),
    [
        (lambda net: {"state_dict": net}, "state_dict", None),
        (lambda net: {"model": net, "epoch": 12, "scheduler": [1, 2]}, "model", 12),
        (lambda net: {"network": net}, "epoch/network/optimizer", None),
        (lambda net: dict(net), "bare", None),
    ],
    ids=["state_dict", "model", "network-only", "bare"],
)
def test_wrappers(wrap, wrapper: str, epoch, xs_stored: dict, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(xs_stored["network"]), path)
    raw = read_checkpoint(path)
    assert raw.wrapper == wrapper
    assert raw.epoch == epoch
    assert raw.header_metadata == {}
    assert_same_tensors(raw.tensors, xs_stored["network"])


def test_safetensors(xs_stored: dict, tmp_path: Path) -> None:
    path = tmp_path / "canonical.safetensors"
    metadata = {"variant": "XS", "format": "cnp-canonical-1"}
    save_file(xs_stored["network"], str(path), metadata=metadata)
    raw = read_checkpoint(path)
    assert raw.container == "safetensors" and raw.wrapper == "safetensors"
    assert raw.archive_prefix is None and raw.epoch is None
    assert raw.header_metadata == metadata
    assert raw.sha256 == file_sha256(path) and raw.size_bytes == path.stat().st_size
    expected = xs_stored["network"]
    assert set(raw.tensors) == set(expected)
    assert_same_tensors({k: raw.tensors[k] for k in expected}, expected)


def test_parameters_come_back_as_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "params.pth"
    torch.save({"w": torch.nn.Parameter(torch.arange(4.0))}, path)
    tensor = read_checkpoint(path).tensors["w"]
    assert not tensor.requires_grad and torch.equal(tensor, torch.arange(4.0))


# --- bad input: one line, path first, CheckpointError --------------------------------------------


def _small_zip(tmp_path: Path, obj: object, name: str = "small.pth", **kwargs) -> Path:
    path = tmp_path / name
    torch.save(obj, path, **kwargs)
    return path


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _half_release(tmp_path: Path, xs_file: Path) -> Path:
    data = xs_file.read_bytes()
    return _write(tmp_path, "ConvNeXtPose_XS.tar", data[: len(data) // 2])


def _flipped_storage(tmp_path: Path, xs_file: Path) -> Path:
    data = bytearray(xs_file.read_bytes())
    middle = len(data) // 2  # deep inside a weight storage: torch alone would load it silently
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    return _write(tmp_path, "ConvNeXtPose_XS.tar", bytes(data))


def _jpeg(tmp_path: Path, _xs: Path) -> Path:
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    return _write(tmp_path, "photo.pth", encoded.tobytes())


def _dir_without_pickle(tmp_path: Path, _xs: Path) -> Path:
    directory = tmp_path / "snapshot_68.pth"
    (directory / "data").mkdir(parents=True)
    (directory / "version").write_text("3\n")
    return directory


def _dir_missing_storage(tmp_path: Path, _xs: Path) -> Path:
    archive = _small_zip(tmp_path, {"network": {"a": torch.zeros(2), "b": torch.ones(3)}})
    records = unzip_release(archive, tmp_path / "out")
    (records / "data" / "1").unlink()
    return records


def _dir_missing_version(tmp_path: Path, _xs: Path) -> Path:
    archive = _small_zip(tmp_path, {"network": {"a": torch.zeros(2)}})
    records = unzip_release(archive, tmp_path / "out")
    (records / "version").unlink()
    return records


def _legacy_truncated(tmp_path: Path, _xs: Path) -> Path:
    path = _small_zip(tmp_path, {"a": torch.zeros(4096)}, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    return _write(tmp_path, "cut.pth", data[: len(data) // 2])


def _plain_zip(tmp_path: Path, _xs: Path) -> Path:
    path = tmp_path / "notes.tar"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    return path


def _truncated_safetensors(tmp_path: Path, _xs: Path) -> Path:
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1000)}, str(path))
    data = path.read_bytes()
    return _write(tmp_path, "w.safetensors", data[: len(data) - 100])


BAD_INPUTS = {
    "missing": (lambda t, x: t / "nope.tar", "no such file"),
    "empty": (lambda t, x: _write(t, "empty.pth", b""), "empty file"),
    "truncated-zip": (_half_release, "truncated or corrupt torch zip archive"),
    "flipped-bytes": (_flipped_storage, "CRC mismatch"),
    "random-bytes": (
        lambda t, x: _write(t, "noise.pth", np.random.default_rng(0).bytes(4096)),
        "unrecognised file format",
    ),
    "dir-no-data-pkl": (_dir_without_pickle, "without data.pkl: expected an unzipped torch"),
    "dir-missing-storage": (_dir_missing_storage, "data/1"),
    "dir-missing-version": (_dir_missing_version, "data.pkl but no 'version'"),
    "jpeg": (_jpeg, "is a JPEG image, not a checkpoint"),
    "json": (lambda t, x: _write(t, "c.pth", json.dumps({"a": [1]}).encode()), "is a JSON file"),
    "html": (
        lambda t, x: _write(t, "c.tar", b"<!DOCTYPE html><html><body>quota</body></html>"),
        "HTML page",
    ),
    "plain-zip": (_plain_zip, "zip archive without notes/data.pkl"),
    "plain-pickle": (
        lambda t, x: _write(t, "p.pkl", pickle.dumps({"a": 1})),
        "plain Python pickle",
    ),
    "legacy-truncated": (_legacy_truncated, "truncated or corrupt torch pre-1.6"),
    "safetensors-truncated": (_truncated_safetensors, "safetensors"),
    "list": (lambda t, x: _small_zip(t, [torch.zeros(1)]), "holds a list, not a dict"),
    "list-legacy": (
        lambda t, x: _small_zip(t, [torch.zeros(1)], _use_new_zipfile_serialization=False),
        "holds a list, not a dict",
    ),
    "no-state-dict": (
        lambda t, x: _small_zip(t, {"epoch": 3, "notes": "hi"}),
        "no recognisable state dict",
    ),
    "non-tensor-values": (
        lambda t, x: _small_zip(t, {"epoch": 3, "network": {"w": torch.zeros(1), "b": 1.5}}),
        "'b' is a float, not a tensor",
    ),
    "empty-state-dict": (lambda t, x: _small_zip(t, {"state_dict": {}}), "empty state dict"),
    "ambiguous": (
        lambda t, x: _small_zip(t, {"network": {"a": torch.zeros(1)}, "model": {}}),
        "ambiguous",
    ),
    "bad-epoch": (
        lambda t, x: _small_zip(t, {"epoch": "68", "network": {"a": torch.zeros(1)}}),
        "expected an integer",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_checkpoint_error(case: str, xs_file: Path, tmp_path: Path) -> None:
    build, expected = BAD_INPUTS[case]
    path = build(tmp_path, xs_file)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    message = assert_one_line(info.value, path)
    assert expected in message


def test_parent_with_two_checkpoints_is_refused(tmp_path: Path) -> None:
    for name in ("snapshot_1.pth.tar", "snapshot_2.pth.tar"):
        unzip_release(_small_zip(tmp_path, {"a": torch.zeros(1)}, name), tmp_path / "both")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(tmp_path / "both")
    message = assert_one_line(info.value, tmp_path / "both")
    assert "snapshot_1.pth, snapshot_2.pth" in message


# --- hostile pickles -----------------------------------------------------------------------------


class _ShellTouch:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class _OpenForWrite:
    """Unpickling this calls open(marker, 'w'), which creates the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _hostile(payload) -> dict:
    return {"epoch": 1, "network": {"w": torch.zeros(2), "x": payload}, "optimizer": {}}


def test_payload_is_live_without_weights_only(tmp_path: Path) -> None:
    """Control: the payload really creates its file when unpickled the unsafe way."""
    marker = tmp_path / "control"
    path = _small_zip(tmp_path, _hostile(_ShellTouch(marker)))
    torch.load(path, weights_only=False)  # the unsafe load this module never does
    assert marker.exists()


@pytest.mark.parametrize("form", ["zip", "legacy", "directory"])
@pytest.mark.parametrize(
    ("payload", "culprit"), [(_ShellTouch, "posix.system"), (_OpenForWrite, "io.open")]
)
def test_hostile_pickle_is_refused_unrun(form, payload, culprit, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    legacy = form == "legacy"
    path = _small_zip(
        tmp_path, _hostile(payload(marker)), "evil.pth", _use_new_zipfile_serialization=not legacy
    )
    if form == "directory":
        path = unzip_release(path, tmp_path / "unzipped")
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    message = assert_one_line(info.value, path)
    assert culprit in message
    assert "callable/global that is not allowed" in message and "not executed" in message
    assert not marker.exists()


def test_env_override_cannot_enable_unsafe_loading(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    path = _small_zip(tmp_path, _hostile(_ShellTouch(marker)))
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


def test_pickled_module_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = _small_zip(tmp_path, torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    message = assert_one_line(info.value, path)
    assert "torch.nn.modules.conv.Conv2d" in message and "state_dict" in message


def test_no_way_to_ask_for_unsafe_loading() -> None:
    assert list(inspect.signature(read_checkpoint).parameters) == ["path"]
