"""converter.checkpoints.reader on tiny hand-made files: exact one-line messages and the limits.

Every file here is a few hundred bytes written with the standard library, torch.save of a small
dict or safetensors, so the whole module runs in about a second (it is part of `just mutate`).
The expected messages are the user-facing contract: path first, one line, what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from converter.checkpoints import reader
from converter.checkpoints.reader import read_checkpoint
from converter.core.errors import CheckpointError, UnsafeCheckpointError

NET = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.tensor([1.0, -1.0])}


def _save(tmp_path: Path, obj: object, name: str = "c.pth", **kwargs: object) -> Path:
    path = tmp_path / name
    torch.save(obj, path, **kwargs)
    return path


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refusal(path: Path, cls: type[CheckpointError] = CheckpointError) -> str:
    with pytest.raises(cls) as info:
        read_checkpoint(path)
    assert info.value.exit_code == 2
    if cls is CheckpointError:
        assert not isinstance(info.value, UnsafeCheckpointError)
    return str(info.value)


def _records(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _rezip(path: Path, records: dict[str, bytes], **options: object) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, content in records.items():
            archive.writestr(name, content, **options)
    return path


# --- what is read ------------------------------------------------------------------------------


def test_bare_dict_in_a_zip_is_read_with_its_record_prefix_and_hash(tmp_path: Path) -> None:
    path = _save(tmp_path, NET, "weights.bin")
    prefix = next(iter(_records(path))).split("/")[0]  # what the zip itself says
    raw = read_checkpoint(path)
    assert (raw.container, raw.wrapper, raw.archive_prefix) == ("torch-zip", "bare", prefix)
    assert raw.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert raw.size_bytes == len(path.read_bytes())
    assert raw.epoch is None and raw.header_metadata == {}
    assert list(raw.tensors) == ["a.weight", "a.bias"]
    assert torch.equal(raw.tensors["a.bias"], torch.tensor([1.0, -1.0]))


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(7, 7), (torch.tensor(9), 9), (4.0, 4), (-2, -2), (0, 0)],
    ids=["int", "int-tensor", "whole-float", "negative", "zero"],
)
def test_stored_epoch_forms(tmp_path: Path, epoch: object, expected: int) -> None:
    raw = read_checkpoint(_save(tmp_path, {"epoch": epoch, "network": NET, "optimizer": {}}))
    assert raw.wrapper == "epoch/network/optimizer"
    assert raw.epoch == expected and type(raw.epoch) is int


@pytest.mark.parametrize(
    ("epoch", "shown"),
    [
        (True, "True"),
        (2.5, "2.5"),
        ("68", "'68'"),
        (torch.tensor(3.0), "a Tensor"),
        ([1], "a list"),
    ],
)
def test_epoch_that_is_no_integer_is_refused(tmp_path: Path, epoch: object, shown: str) -> None:
    path = _save(tmp_path, {"epoch": epoch, "model": NET})
    assert _refusal(path) == f"{path}: 'epoch' is {shown}, expected an integer"


@pytest.mark.parametrize(
    ("text", "expected"), [("12", 12), ("-3", -3), ("", None), ("1.5", None), ("x1", None)]
)
def test_epoch_from_metadata_only_when_it_is_an_integer(tmp_path: Path, text, expected) -> None:
    path = _save(tmp_path, {"state_dict": NET, "cnp_metadata": {"epoch": text, "k": "v"}})
    raw = read_checkpoint(path)
    assert raw.wrapper == "state_dict" and raw.epoch == expected
    assert raw.header_metadata == {"epoch": text, "k": "v"}


def test_a_stored_epoch_wins_over_the_metadata(tmp_path: Path) -> None:
    path = _save(tmp_path, {"epoch": 5, "network": NET, "cnp_metadata": {"epoch": "9"}})
    assert read_checkpoint(path).epoch == 5


@pytest.mark.parametrize("metadata", [["a"], {"a": 1}, {1: "a"}])
def test_metadata_must_be_str_to_str(tmp_path: Path, metadata: object) -> None:
    path = _save(tmp_path, {"state_dict": NET, "cnp_metadata": metadata})
    assert _refusal(path) == f"{path}: 'cnp_metadata' is not a dict of str -> str"


def test_legacy_format_is_read(tmp_path: Path) -> None:
    path = _save(tmp_path, {"model": NET, "epoch": 3}, _use_new_zipfile_serialization=False)
    raw = read_checkpoint(path)
    assert (raw.container, raw.archive_prefix, raw.wrapper, raw.epoch) == (
        "torch-legacy",
        None,
        "model",
        3,
    )


def test_safetensors_with_an_epoch_in_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(NET, str(path), metadata={"epoch": "21", "variant": "XS"})
    raw = read_checkpoint(path)
    assert (raw.container, raw.wrapper, raw.archive_prefix, raw.epoch) == (
        "safetensors",
        "safetensors",
        None,
        21,
    )
    assert raw.header_metadata == {"epoch": "21", "variant": "XS"}
    assert raw.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert raw.path == path and raw.size_bytes == path.stat().st_size


def _safetensors_bytes(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def test_safetensors_metadata_that_is_no_str_map_is_refused(tmp_path: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"a": 1}}
    path = _write(tmp_path, "m.safetensors", _safetensors_bytes(header, b"\0\0\0\0"))
    # safetensors itself refuses it first; the reader's own check guards the same rule.
    assert _refusal(path).startswith(f"{path}: truncated or corrupt safetensors file (")
    for bad in ({"a": 1}, {1: "a"}, ["a"]):
        with pytest.raises(CheckpointError) as info:
            reader._metadata_from_header(path, bad)
        assert str(info.value) == f"{path}: safetensors __metadata__ is not a dict of str -> str"
    assert reader._metadata_from_header(path, {"a": "b"}) == {"a": "b"}


def test_safetensors_header_longer_than_the_file_is_refused(tmp_path: Path) -> None:
    data = struct.pack("<Q", 100) + b'{"a": 1}'  # 16 bytes in all, header claims 100
    path = _write(tmp_path, "h.safetensors", data)
    assert _refusal(path) == (
        f"{path}: truncated or corrupt safetensors file (header of 100 bytes, file has 16)"
    )


def test_safetensors_header_exactly_the_rest_of_the_file_is_parsed(tmp_path: Path) -> None:
    text = b'{"__metadata__": {}}'
    path = _write(tmp_path, "e.safetensors", struct.pack("<Q", len(text)) + text)
    # A header that fits is parsed; no tensors means an empty state dict, not a truncation.
    assert _refusal(path) == f"{path}: the safetensors file is an empty state dict"


# --- the unwrapped state dict ------------------------------------------------------------------


def test_requires_grad_is_dropped(tmp_path: Path) -> None:
    path = _save(tmp_path, {"w": torch.nn.Parameter(torch.ones(2)), "b": torch.zeros(1)})
    tensors = read_checkpoint(path).tensors
    assert not tensors["w"].requires_grad and not tensors["b"].requires_grad


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([torch.zeros(1)], "holds a list, not a dict with a state dict"),
        ({}, "holds an empty dict, no state dict"),
        ({"network": [1]}, "the 'network' entry is a list, not a state dict"),
        ({"model": {}}, "the 'model' entry is an empty state dict"),
        (
            {"state_dict": {1: torch.zeros(1)}},
            "the 'state_dict' entry is not a state dict: a key is an int, not a string",
        ),
        (
            {"network": {"w": torch.zeros(1), "o": "x"}},
            "the 'network' entry is not a state dict: 'o' is a str, not a tensor",
        ),
        (
            {"network": NET, "state_dict": NET},
            "ambiguous: holds several state dicts (network, state_dict)",
        ),
        (
            {"w": torch.tensor([1.0, float("nan"), float("inf")])},
            "the top-level dict: 'w' holds 2 non-finite value(s) (NaN or inf)",
        ),
        (
            {"w": torch.zeros(2, dtype=torch.complex64)},
            "the top-level dict: 'w' is a complex tensor",
        ),
        (
            {"w": torch.zeros(2).to_sparse()},
            "the top-level dict: 'w' is a sparse_coo tensor, not a dense one",
        ),
    ],
    ids=[
        "list",
        "empty",
        "entry-not-dict",
        "entry-empty",
        "int-key",
        "str-value",
        "ambiguous",
        "non-finite",
        "complex",
        "sparse",
    ],
)
def test_what_is_no_state_dict_is_named(tmp_path: Path, obj: object, message: str) -> None:
    path = _save(tmp_path, obj)
    assert _refusal(path) == f"{path}: {message}"


def test_integer_tensors_are_not_checked_for_finiteness(tmp_path: Path) -> None:
    path = _save(tmp_path, {"n": torch.tensor([2**62, -(2**62)])})
    assert read_checkpoint(path).tensors["n"].tolist() == [2**62, -(2**62)]


def test_no_recognisable_state_dict_lists_at_most_eight_keys(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(9)]
    path = _save(tmp_path, dict.fromkeys(keys, 1))
    shown = ", ".join(repr(k) for k in keys[:8])
    assert _refusal(path) == (
        f"{path}: no recognisable state dict: expected a 'network', 'state_dict' or 'model' "
        f"entry, or a flat name -> tensor dict; found keys {shown}, ..."
    )
    path8 = _save(tmp_path, dict.fromkeys(keys[:8], 1), "eight.pth")
    assert _refusal(path8).endswith(f"found keys {shown}")


def test_long_keys_are_cut_to_sixty_characters(tmp_path: Path) -> None:
    long_key = "k" * 61
    path = _save(tmp_path, {"network": {long_key: 1}})
    assert _refusal(path) == (
        f"{path}: the 'network' entry is not a state dict: {'k' * 60!r}... is an int, not a tensor"
    )
    exact = _save(tmp_path, {"network": {"k" * 60: 1}}, "exact.pth")
    assert _refusal(exact).endswith(f": {'k' * 60!r} is an int, not a tensor")


@pytest.mark.parametrize("count", [3, 4])
def test_tensor_count_limit(tmp_path: Path, monkeypatch, count: int) -> None:
    monkeypatch.setattr(reader, "MAX_TENSORS", 3)
    path = _save(tmp_path, {f"t{i}": torch.zeros(1) for i in range(count)})
    if count == 3:
        assert len(read_checkpoint(path).tensors) == 3
    else:
        assert _refusal(path) == f"{path}: the top-level dict holds 4 entries (limit 3)"


# --- what is not a checkpoint at all -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.pth", b"", "empty file (0 bytes), not a checkpoint"),
        ("p.pth", b"\x89PNG\r\n\x1a\n" + bytes(8), "is a PNG image, not a checkpoint"),
        ("j.pth", b"\xff\xd8\xff\xe0" + bytes(8), "is a JPEG image, not a checkpoint"),
        (
            "g.pth",
            gzip.compress(b"hello"),
            "is gzip-compressed data, not a checkpoint (decompress it first)",
        ),
        (
            "h.tar",
            b"  <html><body>quota</body></html>",
            "is an HTML page, not a checkpoint (a failed or blocked download?)",
        ),
        ("l.pth", b'[1, 2, {"a": 3}]', "is a JSON file, not a checkpoint"),
        ("t.pth", "plain words, ünïcode".encode(), "is a text file, not a checkpoint"),
        (
            "b.pth",
            bytes(range(0, 64)),
            "unrecognised file format (starts with 00 01 02 03 04 05 06 07); expected a torch "
            "checkpoint (zip or pre-1.6 format), an unzipped checkpoint directory or safetensors",
        ),
        (
            "x.safetensors",
            b"not a header at all",
            "not a valid safetensors file (no JSON header after the 8-byte length)",
        ),
        (
            "m.onnx",
            b"\x08\x07\x12\x07pytorch",
            "is an ONNX graph, not a checkpoint; check it with `cnp-convert verify`",
        ),
    ],
    ids=["empty", "png", "jpeg", "gzip", "html", "json", "text", "binary", "st", "onnx"],
)
def test_foreign_files_are_named(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    path = _write(tmp_path, name, data)
    assert _refusal(path) == f"{path}: {message}"


def test_a_real_tar_says_to_extract_it(tmp_path: Path) -> None:
    block = bytearray(512)
    block[:8] = b"file.txt"
    block[257:262] = b"ustar"  # POSIX tar header magic at offset 257
    path = _write(tmp_path, "r.tar", bytes(block) + bytes(1024))
    assert _refusal(path) == (
        f"{path}: is a real tar archive, not a checkpoint (the released .tar files are torch zip "
        "archives); extract it and point at the checkpoint inside"
    )


def test_broken_json_and_binary_text_are_not_called_json_or_text(tmp_path: Path) -> None:
    broken = _write(tmp_path, "j.pth", b"{ not json")
    assert _refusal(broken) == f"{broken}: is a text file, not a checkpoint"
    latin = _write(tmp_path, "t.pth", b"caf\xe9 au lait")  # not UTF-8
    assert "unrecognised file format (starts with 63 61 66 e9 20 61 75 20)" in _refusal(latin)


def test_plain_pickles(tmp_path: Path) -> None:
    import pickle

    plain = _write(tmp_path, "p.pth", pickle.dumps({"a": 1}, protocol=2))
    assert _refusal(plain) == (
        f"{plain}: is a plain Python pickle, not a torch.save checkpoint (no torch magic "
        "number); it cannot be loaded safely"
    )
    record = tmp_path / "snap" / "data.pkl"
    record.parent.mkdir()
    record.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert _refusal(record) == (
        f"{record}: is one record of an unzipped checkpoint; pass the folder that holds it "
        f"({record.parent})"
    )


def test_not_a_file(tmp_path: Path) -> None:
    import os

    missing = tmp_path / "nope.pth"
    assert _refusal(missing) == f"{missing}: no such file or directory"
    pipe = tmp_path / "pipe.pth"
    os.mkfifo(pipe)
    assert _refusal(pipe) == f"{pipe}: not a regular file or directory"


# --- size limits: just inside and just outside --------------------------------------------------


def test_file_size_limit(tmp_path: Path, monkeypatch) -> None:
    path = _save(tmp_path, NET)
    size = path.stat().st_size
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", size)
    assert read_checkpoint(path).size_bytes == size
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", size - 1)
    assert _refusal(path) == (
        f"{path}: {size:,} bytes, over the {size - 1:,}-byte limit for a checkpoint"
    )


def test_zip_inflated_size_limit(tmp_path: Path, monkeypatch) -> None:
    path = _save(tmp_path, NET)
    with zipfile.ZipFile(path) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    monkeypatch.setattr(reader, "MAX_INFLATED_BYTES", declared)
    assert read_checkpoint(path).container == "torch-zip"
    monkeypatch.setattr(reader, "MAX_INFLATED_BYTES", declared - 1)
    assert _refusal(path) == (
        f"{path}: zip records declare {declared:,} bytes, over the {declared - 1:,} limit"
    )


def test_zip_record_count_limit(tmp_path: Path, monkeypatch) -> None:
    path = _save(tmp_path, NET)
    count = len(_records(path))
    monkeypatch.setattr(reader, "MAX_FOLDER_FILES", count)
    assert read_checkpoint(path).container == "torch-zip"
    monkeypatch.setattr(reader, "MAX_FOLDER_FILES", count - 1)
    assert _refusal(path) == (f"{path}: zip archive with {count:,} records (limit {count - 1:,})")


# --- zip archives that torch would read wrongly or not at all ----------------------------------


def test_zip_structure_is_checked(tmp_path: Path) -> None:
    records = _records(_save(tmp_path, NET, "src.pth"))
    prefix = next(iter(records)).split("/")[0]

    flat = _rezip(tmp_path / "flat.pth", {"data.pkl": b"x"})
    assert (
        _refusal(flat)
        == f"{flat}: zip archive whose first record 'data.pkl' is not inside a folder"
    )

    script = dict(records)
    script[f"{prefix}/constants.pkl"] = b"\x80\x02]q\x00."
    jit = _rezip(tmp_path / "jit.pth", script)
    assert _refusal(jit) == f"{jit}: is a TorchScript archive (torch.jit.save), not a checkpoint"

    no_version = {k: v for k, v in records.items() if not k.endswith("/version")}
    assert not any(k.endswith(".data/version") for k in no_version)
    cut = _rezip(tmp_path / "cut.pth", no_version)
    assert _refusal(cut) == (
        f"{cut}: truncated or corrupt torch zip archive (no {prefix}/version record)"
    )

    moved = {
        k.replace(f"{prefix}/version", f"{prefix}/.data/version"): v for k, v in records.items()
    }
    assert read_checkpoint(_rezip(tmp_path / "moved.pth", moved)).wrapper == "bare"

    empty = tmp_path / "empty.pth"
    with zipfile.ZipFile(empty, "w"):
        pass
    assert _refusal(empty) == f"{empty}: empty zip archive, not a checkpoint"


def test_zip_without_end_record_says_it_is_cut_short(tmp_path: Path) -> None:
    data = _save(tmp_path, NET).read_bytes()
    path = _write(tmp_path, "half.pth", data[:200])
    assert _refusal(path) == (
        f"{path}: truncated or corrupt torch zip archive (no central directory at the end, the "
        "file is probably cut short; 200 bytes)"
    )


def _stored_offset(data: bytes, name: str) -> int:
    """Where a stored record's bytes start, read from its local header (zip spec 4.3.7)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_len + extra_len


def test_a_flipped_byte_in_a_storage_is_a_crc_mismatch(tmp_path: Path) -> None:
    data = bytearray(_save(tmp_path, NET).read_bytes())
    name = next(k for k in _records(tmp_path / "c.pth") if k.endswith("/data/0"))
    data[_stored_offset(bytes(data), name)] ^= 0x01
    path = _write(tmp_path, "flip.pth", bytes(data))
    assert _refusal(path) == (
        f"{path}: truncated or corrupt torch zip archive (CRC mismatch in record {name!r})"
    )


def _zero_crc(data: bytearray, name: str) -> None:
    """Zero one record's CRC-32 in both its local header and its central directory entry."""
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(name)
    struct.pack_into("<I", data, info.header_offset + 14, 0)
    position = data.find(b"PK\x01\x02")
    while position != -1:
        length = struct.unpack_from("<H", data, position + 28)[0]
        if data[position + 46 : position + 46 + length] == name.encode():
            struct.pack_into("<I", data, position + 16, 0)
            return
        position = data.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"no central directory entry for {name}")


def test_a_zeroed_crc_among_others_is_refused_and_all_zero_is_read(tmp_path: Path) -> None:
    original = _save(tmp_path, NET).read_bytes()
    names = list(_records(tmp_path / "c.pth"))
    storage = next(k for k in names if k.endswith("/data/0"))
    one = bytearray(original)
    _zero_crc(one, storage)
    path = _write(tmp_path, "one.pth", bytes(one))
    assert _refusal(path) == (
        f"{path}: truncated or corrupt torch zip archive (CRC field zeroed in record {storage!r})"
    )
    every = bytearray(original)
    for name in names:
        _zero_crc(every, name)
    assert read_checkpoint(_write(tmp_path, "none.pth", bytes(every))).wrapper == "bare"


def test_a_deflated_record_is_checked_by_zipfile(tmp_path: Path) -> None:
    records = _records(_save(tmp_path, NET))
    path = tmp_path / "deflated.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in records.items():
            archive.writestr(name, content)
    assert read_checkpoint(path).wrapper == "bare"


def test_encrypted_and_odd_compression_records_are_named(tmp_path: Path) -> None:
    records = _records(_save(tmp_path, NET))
    first = next(iter(records))
    data = bytearray(_rezip(tmp_path / "src.pth", records).read_bytes())
    position = data.find(b"PK\x01\x02")  # first central entry: general purpose flag at +8
    struct.pack_into("<H", data, position + 8, 1)
    path = _write(tmp_path, "enc.pth", bytes(data))
    assert _refusal(path) == f"{path}: zip record {first!r} is encrypted"

    data = bytearray(_rezip(tmp_path / "src.pth", records).read_bytes())
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 10, 12)  # method 12: bzip2
    path = _write(tmp_path, "bz.pth", bytes(data))
    assert _refusal(path) == (
        f"{path}: zip record {first!r} uses compression method 12 (torch archives are stored "
        "or deflated)"
    )


def test_a_record_named_twice_is_refused(tmp_path: Path) -> None:
    records = _records(_save(tmp_path, NET))
    last = list(records)[-1]
    path = tmp_path / "dup.pth"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as archive:
        for name, content in [*records.items(), (last, records[last])]:
            archive.writestr(name, content)
    assert _refusal(path) == f"{path}: zip archive holds the record {last!r} twice"


# --- unzipped folders --------------------------------------------------------------------------


def _unzip(archive: Path, into: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(into)
        prefix = zipped.namelist()[0].split("/")[0]
    return into / prefix


def test_unzipped_folder_hash_is_the_documented_framing(tmp_path: Path) -> None:
    records = _unzip(_save(tmp_path, {"network": NET, "epoch": 2}, "snap.pth"), tmp_path / "out")
    files = sorted(p.relative_to(records).as_posix() for p in records.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for relative in files:
        content = (records / relative).read_bytes()
        digest.update(relative.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    for given in (records, tmp_path / "out"):
        raw = read_checkpoint(given)
        assert (raw.container, raw.archive_prefix, raw.wrapper, raw.epoch) == (
            "unzipped-directory",
            records.name,
            "epoch/network/optimizer",
            2,
        )
        assert raw.sha256 == digest.hexdigest()
        assert raw.size_bytes == sum((records / f).stat().st_size for f in files)
        assert raw.path == given


def test_folder_messages(tmp_path: Path) -> None:
    archive = _save(tmp_path, NET, "one.pth")
    records = _unzip(archive, tmp_path / "two")
    (tmp_path / "two" / "other").mkdir()
    (tmp_path / "two" / "other" / "data.pkl").write_bytes(b"x")
    both = tmp_path / "two"
    assert (
        _refusal(both)
        == f"{both}: holds 2 unzipped checkpoints ({records.name}, other); point at one"
    )

    plain = tmp_path / "plain"
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        (plain / name).mkdir(parents=True)
    assert _refusal(plain) == (
        f"{plain}: directory without data.pkl: expected an unzipped torch checkpoint (data.pkl, "
        "version, data/0..N) or a folder holding exactly one; found a, b, c, d, e, f"
    )
    (tmp_path / "void").mkdir()
    assert _refusal(tmp_path / "void").endswith("found nothing")

    (records / "version").unlink()
    assert _refusal(records) == (
        f"{records}: incomplete unzipped checkpoint {records.name}: data.pkl but no 'version'"
    )


def test_folder_limits(tmp_path: Path, monkeypatch) -> None:
    records = _unzip(_save(tmp_path, NET, "lim.pth"), tmp_path / "out")
    files = [p for p in records.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    depth = max(len(p.relative_to(records).parts) for p in files)  # folders below, plus one
    monkeypatch.setattr(reader, "MAX_FOLDER_FILES", len(files))
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", total)
    monkeypatch.setattr(reader, "MAX_FOLDER_DEPTH", depth)
    assert read_checkpoint(records).size_bytes == total

    monkeypatch.setattr(reader, "MAX_FOLDER_DEPTH", depth - 1)
    assert _refusal(records) == f"{records}: folders nested deeper than {depth - 1}"
    monkeypatch.setattr(reader, "MAX_FOLDER_DEPTH", depth)
    for limit, value in (("MAX_FOLDER_FILES", len(files) - 1), ("MAX_FILE_BYTES", total - 1)):
        monkeypatch.setattr(reader, limit, value)
        assert _refusal(records) == f"{records}: folder too large for a checkpoint"
        monkeypatch.setattr(reader, limit, value + 1)


def test_links_and_special_files_in_a_folder_are_refused(tmp_path: Path) -> None:
    import os

    records = _unzip(_save(tmp_path, NET, "sp.pth"), tmp_path / "out")
    (records / "extra").symlink_to(tmp_path / "sp.pth")
    assert _refusal(records) == f"{records}: 'extra' is a symbolic link; refused"
    (records / "extra").unlink()
    os.mkfifo(records / "pipe")
    assert _refusal(records) == f"{records}: 'pipe' is not a regular file; refused"


# --- weights-only refusals ---------------------------------------------------------------------


class _Call:
    def __reduce__(self):
        return (print, ("never",))


def test_a_pickle_naming_a_callable_is_unsafe(tmp_path: Path) -> None:
    path = _save(tmp_path, {"network": {"w": torch.zeros(1), "x": _Call()}})
    assert _refusal(path, UnsafeCheckpointError) == (
        f"{path}: refused: the pickle references print, a callable/global that is not "
        "allowed in a weights-only load; it was not executed"
    )


def test_a_pickled_module_gets_the_state_dict_hint(tmp_path: Path) -> None:
    path = _save(tmp_path, torch.nn.ReLU())
    assert _refusal(path, UnsafeCheckpointError) == (
        f"{path}: refused: the pickle references torch.nn.modules.activation.ReLU, a "
        "callable/global that is not allowed in a weights-only load; it was not executed (a "
        "whole pickled model? save its state_dict instead)"
    )


def test_code_opcodes_are_unsafe_and_other_bad_opcodes_are_not(tmp_path: Path) -> None:
    message = "Weights only load failed. Unsupported operand 147. Check the documentation"
    refusal = reader._refusal(Path("f"), message)
    assert isinstance(refusal, UnsafeCheckpointError)
    assert str(refusal) == (
        "f: refused: the pickle references a callable/global (opcode STACK_GLOBAL) that is not "
        "allowed in a weights-only load; it was not executed"
    )
    plain = reader._refusal(Path("f"), "WeightsUnpickler error: Unsupported operand 98\n")
    assert type(plain) is CheckpointError
    assert str(plain) == (
        "f: its pickle cannot be read by the weights-only loader (Unsupported operand 98); "
        "nothing in it was executed"
    )


# --- torch's own refusals, translated -------------------------------------------------------------


def test_a_storage_record_torch_cannot_find(tmp_path: Path) -> None:
    records = _records(_save(tmp_path, NET, "src.pth"))
    storage = next(k for k in records if k.endswith("/data/1"))
    path = _rezip(tmp_path / "gap.pth", {k: v for k, v in records.items() if k != storage})
    message = _refusal(path)
    assert message.startswith(f"{path}: truncated or corrupt torch zip archive (")
    folder = _unzip(_save(tmp_path, NET, "dir.pth"), tmp_path / "out")
    (folder / "data" / "1").unlink()
    message = _refusal(folder)
    assert message.startswith(f"{folder}: incomplete or corrupt unzipped checkpoint directory (")
    # The repacked record name is ours: the user sees the folder's own relative path.
    assert re.search(r"(?<![\w/])data/1\b", message) and "archive/" not in message
    legacy = _save(
        tmp_path, {"a": torch.zeros(256)}, "old.pth", _use_new_zipfile_serialization=False
    )
    cut = _write(tmp_path, "cut.pth", legacy.read_bytes()[:-200])
    assert _refusal(cut).startswith(
        f"{cut}: truncated or corrupt torch pre-1.6 (non-zip) checkpoint ("
    )


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (RecursionError, "its pickle nests objects too deeply to be a checkpoint"),
        (MemoryError, "its pickle asks for more memory than this machine has"),
        (EOFError, "truncated or corrupt torch zip archive (unexpected end of file)"),
    ],
)
def test_loader_failures_are_one_line(tmp_path: Path, monkeypatch, raised, message) -> None:
    path = _save(tmp_path, NET)

    def fail(*args, **kwargs):
        raise raised()

    monkeypatch.setattr(reader.torch, "load", fail)
    assert _refusal(path) == f"{path}: {message}"


def test_reasons_are_first_sentences() -> None:
    assert reader._reason(EOFError()) == "unexpected end of file"
    assert reader._reason(EOFError("Ran out of input")) == "Ran out of input"
    assert reader._reason(ValueError()) == "ValueError"
    assert reader._reason(ValueError("First part. Second part.")) == "First part"
    assert reader._reason(ValueError("x" * 300)) == "x" * 200
    assert reader._reason(ValueError("A. B. C.")) == "A"
    assert reader._reason(ValueError("Ends here.")) == "Ends here"
    assert reader._one_line("\x1b[31mred\x1b[0m\n  text\r\n") == "red text"


def test_refusal_messages_from_loader_text() -> None:
    main = reader._refusal(Path("f"), "GLOBAL __main__.Net was not an allowed global by default")
    assert str(main).endswith(
        "it was not executed (a whole pickled model? save its state_dict instead)"
    )
    nested = reader._refusal(
        Path("f"), "WeightsUnpickler error: first\nlast line\n\nCheck the documentation of torch"
    )
    assert str(nested) == (
        "f: its pickle cannot be read by the weights-only loader (last line); nothing in it "
        "was executed"
    )
    twice = reader._refusal(Path("f"), "WeightsUnpickler error: a WeightsUnpickler error: b")
    assert "(a WeightsUnpickler error: b)" in str(twice)
    plain = reader._refusal(Path("f"), "something odd\n")
    assert "loader (something odd);" in str(plain)
    bare = reader._refusal(Path("f"), "WeightsUnpickler error:   \n")
    assert "loader (WeightsUnpickler error:);" in str(bare)


# --- reading, bounded ----------------------------------------------------------------------------


def test_a_file_that_reads_longer_than_its_size(monkeypatch) -> None:
    status = Path("/proc/self/status")  # a regular file whose size says 0 bytes
    assert status.stat().st_size == 0
    monkeypatch.setattr(reader, "_CHUNK", 64)
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 100)
    assert _refusal(status) == f"{status}: grew past the 100-byte limit while read"


def test_bounded_reads(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, "ten", b"0123456789")
    monkeypatch.setattr(reader, "_CHUNK", 4)
    assert reader._read_bounded(path, 10) == b"0123456789"
    assert reader._read_bounded(path, 9) is None
    assert reader._read_bounded(path, 0) is None


def test_nested_folders_just_inside_and_outside_the_depth(tmp_path: Path, monkeypatch) -> None:
    records = _unzip(_save(tmp_path, NET, "deep.pth"), tmp_path / "out")
    (records / "x" / "y" / "z").mkdir(parents=True)  # empty folders: nothing to repack
    monkeypatch.setattr(reader, "MAX_FOLDER_DEPTH", 4)
    assert read_checkpoint(records).wrapper == "bare"
    monkeypatch.setattr(reader, "MAX_FOLDER_DEPTH", 3)
    assert _refusal(records) == f"{records}: folders nested deeper than 3"


def test_a_folder_with_its_version_under_dot_data(tmp_path: Path) -> None:
    records = _unzip(_save(tmp_path, NET, "dot.pth"), tmp_path / "out")
    (records / ".data").mkdir(exist_ok=True)
    (records / "version").rename(records / ".data" / "version")
    assert read_checkpoint(records).container == "unzipped-directory"


# --- more of the zip contract ---------------------------------------------------------------------


def test_the_prefix_is_the_first_records_top_folder(tmp_path: Path) -> None:
    records = _records(_save(tmp_path, NET))
    storage = next(k for k in records if k.endswith("/data/0"))
    first = {storage: records[storage], **{k: v for k, v in records.items() if k != storage}}
    raw = read_checkpoint(_rezip(tmp_path / "reordered.pth", first))
    assert raw.archive_prefix == storage.split("/")[0]


def test_a_zip_without_data_pkl_lists_what_it_holds(tmp_path: Path) -> None:
    names = ["box/a", "box/b", "box/c", "box/d", "box/e"]
    path = _rezip(tmp_path / "box.pth", {name: b"x" for name in names})
    assert _refusal(path) == (
        f"{path}: zip archive without box/data.pkl, not a torch checkpoint (holds box/a, box/b, "
        "box/c, box/d, ...)"
    )


def test_a_broken_local_header(tmp_path: Path) -> None:
    data = bytearray(_save(tmp_path, NET).read_bytes())
    name = next(k for k in _records(tmp_path / "c.pth") if k.endswith("/data/0"))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        offset = archive.getinfo(name).header_offset
    data[offset + 3] = 0x05  # PK\x03\x05: not a local file header
    path = _write(tmp_path, "header.pth", bytes(data))
    assert _refusal(path) == (
        f"{path}: truncated or corrupt torch zip archive (bad local header for {name}; "
        f"{len(data)} bytes)"
    )


# --- sniffing at the edges -----------------------------------------------------------------------


def test_sniffing_edges(tmp_path: Path) -> None:
    ten = _write(tmp_path, "ten.bin", struct.pack("<Q", 2) + b"{}")  # 10 bytes: safetensors
    assert _refusal(ten) == f"{ten}: the safetensors file is an empty state dict"
    doctype = _write(tmp_path, "d.tar", b"<!DOCTYPE html><p>denied</p>")
    assert _refusal(doctype).endswith(
        "is an HTML page, not a checkpoint (a failed or blocked download?)"
    )
    late = _write(tmp_path, "late.tar", b" " * 508 + b"<html></html>")  # tag after byte 512
    assert _refusal(late) == f"{late}: is a text file, not a checkpoint"
    obj = _write(tmp_path, "o.pth", b'{"weights": [1, 2]}')
    assert _refusal(obj) == f"{obj}: is a JSON file, not a checkpoint"
    nul = _write(tmp_path, "nul.txt", b"a" * 4096 + b"\0")  # a NUL after the first 4096 bytes
    assert _refusal(nul) == f"{nul}: is a text file, not a checkpoint"


def test_safetensors_header_edges(tmp_path: Path) -> None:
    data = struct.pack("<Q", 9) + b'{"a": 1}'  # 16 bytes, header claims 9 of the 8 left
    path = _write(tmp_path, "nine.safetensors", data)
    assert _refusal(path) == (
        f"{path}: truncated or corrupt safetensors file (header of 9 bytes, file has 16)"
    )
    bad = _write(tmp_path, "bad.safetensors", struct.pack("<Q", 5) + b"{abc}")
    assert _refusal(bad) == (
        f"{bad}: truncated or corrupt safetensors file (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1))"
    )


def test_odd_keys_are_described_briefly(tmp_path: Path) -> None:
    path = _save(tmp_path, {2**199: 1, 2**198: 2, 1.5: 3, None: 4, True: 5, (1,): 6})
    shown = f"a huge int, {repr(2**198)[:60]}, 1.5, None, True, a tuple"
    assert _refusal(path).endswith(f"found keys {shown}")


def test_a_quantized_tensor_is_named(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # torch deprecates quantized tensors (once per process)
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8)
    path = _save(tmp_path, {"w": quantized})
    assert _refusal(path) == f"{path}: the top-level dict: 'w' is a quantized tensor"


def test_a_checkpoint_saved_from_gpu_tensors_loads_on_the_cpu(tmp_path: Path) -> None:
    """The releases were saved from CUDA tensors: their storages say 'cuda:0'."""
    records = _records(_save(tmp_path, {"w": torch.arange(3.0)}))
    pickled = next(k for k in records if k.endswith("/data.pkl"))
    cpu = b"X\x03\x00\x00\x00cpu"  # BINUNICODE 'cpu', the storage's location
    assert records[pickled].count(cpu) == 1
    records[pickled] = records[pickled].replace(cpu, b"X\x06\x00\x00\x00cuda:0")
    path = _rezip(tmp_path / "gpu.pth", records)
    tensor = read_checkpoint(path).tensors["w"]
    assert tensor.device.type == "cpu" and tensor.tolist() == [0.0, 1.0, 2.0]


def test_a_text_file_with_a_character_across_byte_4096_is_text(tmp_path: Path) -> None:
    data = b"a" * 4095 + "é".encode() + b" and more"  # é's two bytes sit at 4095 and 4096
    path = _write(tmp_path, "notes.pth", data)
    assert _refusal(path) == f"{path}: is a text file, not a checkpoint"


# --- read errors the operating system reports ----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "shown"),
    [(OSError(5, "Input/output error"), "Input/output error"), (OSError("odd"), "odd")],
)
def test_a_file_the_system_cannot_read(tmp_path: Path, monkeypatch, error, shown) -> None:
    path = _save(tmp_path, NET)

    def fail(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Path, "open", fail)
    assert _refusal(path) == f"{path}: cannot read ({shown})"


def test_a_folder_the_system_cannot_read(tmp_path: Path, monkeypatch) -> None:
    records = _unzip(_save(tmp_path, NET, "io.pth"), tmp_path / "out")
    real_open = Path.open

    def fail(self, *args, **kwargs):
        if self.name == "data.pkl":
            raise OSError(5, "Input/output error", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fail)
    assert (
        _refusal(records) == f"{records}: cannot read {records / 'data.pkl'} (Input/output error)"
    )

    def no_listing(self):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", no_listing)
    parent = tmp_path / "out"
    assert _refusal(parent) == f"{parent}: cannot list directory (Permission denied)"


def test_a_folder_that_grows_while_read(tmp_path: Path, monkeypatch) -> None:
    records = _unzip(_save(tmp_path, NET, "grow.pth"), tmp_path / "out")
    total = sum(p.stat().st_size for p in records.rglob("*") if p.is_file())
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", total)
    listed = reader._list_files

    def list_then_grow(folder: Path) -> list[str]:
        files = listed(folder)  # sizes checked here, within the limit
        with (folder / "version").open("ab") as handle:
            handle.write(b"\n")  # one byte more before it is read
        return files

    monkeypatch.setattr(reader, "_list_files", list_then_grow)
    assert _refusal(records) == f"{records}: folder grew past the size limit while read"


def test_only_the_first_4096_bytes_decide_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.pth", b"a" * 4096 + b"\xff not UTF-8 from here")
    assert _refusal(path) == f"{path}: is a text file, not a checkpoint"


# --- bounds on hostile pickles, epochs, values and views -----------------------------------------

WITH_OPTIMIZER = {"network": NET, "optimizer": {"lr": 1, "m": 2}}


@pytest.mark.parametrize(
    ("form", "entries"),
    # By hand: 2 top-level entries, 2 in NET, 2 in the optimizer; torch's pre-1.6 format pickles
    # a sys_info dict before the object (3 entries, and 3 in its type_sizes).
    [("zip", 6), ("folder", 6), ("legacy", 12)],
)
def test_dict_entry_bound_just_inside_and_outside(tmp_path: Path, monkeypatch, form, entries):
    path = _save(tmp_path, WITH_OPTIMIZER, _use_new_zipfile_serialization=form != "legacy")
    if form == "folder":
        path = _unzip(path, tmp_path / "out")
    monkeypatch.setattr(reader, "MAX_DICT_ENTRIES", entries)
    assert read_checkpoint(path).wrapper == "epoch/network/optimizer"
    monkeypatch.setattr(reader, "MAX_DICT_ENTRIES", entries - 1)
    assert _refusal(path) == (
        f"{path}: its pickle would fill dicts with over {entries - 1} entries (a released "
        "checkpoint, optimizer state included, has under 3,000); refused before unpickling"
    )


def test_dict_entries_follow_the_stack_through_nested_values() -> None:
    import pickle

    # Lists and tuples inside the dict move the stack (APPENDS, TUPLE2): 3 entries outside, 2 in.
    nested = pickle.dumps({"a": [1, 2], "b": (3, 4), "c": {"x": 5, "y": 6}}, protocol=2)
    assert reader._dict_entries(nested) == 5
    # PROTO 2, EMPTY_DICT, MARK, three ints, SETITEMS, STOP: an odd item is no whole entry.
    odd = b"\x80\x02}(K\x01K\x02K\x03u."
    assert reader._dict_entries(odd) == 1


def test_the_environment_cannot_turn_weights_only_off(tmp_path: Path, monkeypatch) -> None:
    # torch obeys this variable wherever a call leaves weights_only unset.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = _save(tmp_path, {"network": {"w": torch.zeros(1), "x": _Call()}})
    assert _refusal(path, UnsafeCheckpointError) == (
        f"{path}: refused: the pickle references print, a callable/global that is not "
        "allowed in a weights-only load; it was not executed"
    )


@pytest.mark.parametrize("epoch", [10**9, -(10**9), 1e9])
def test_epoch_bound_just_inside(tmp_path: Path, epoch: object) -> None:
    raw = read_checkpoint(_save(tmp_path, {"epoch": epoch, "model": NET}))
    assert raw.epoch == int(epoch) and type(raw.epoch) is int


@pytest.mark.parametrize(
    ("epoch", "message"),
    [
        (10**9 + 1, "'epoch' is 1000000001, not a count of training epochs"),
        (-(10**9) - 1, "'epoch' is -1000000001, not a count of training epochs"),
        (1e9 + 1, "'epoch' is 1000000001.0, expected an integer"),
    ],
)
def test_epoch_bound_just_outside(tmp_path: Path, epoch: object, message: str) -> None:
    path = _save(tmp_path, {"epoch": epoch, "model": NET})
    assert _refusal(path) == f"{path}: {message}"


def test_float64_values_just_inside_and_outside_float32s_range(tmp_path: Path) -> None:
    import numpy as np

    largest = float(np.finfo(np.float32).max)
    inside = {
        "w": torch.tensor([-largest, 1.0], dtype=torch.float64),
        "empty": torch.zeros(0, dtype=torch.float64),  # no value to check
    }
    raw = read_checkpoint(_save(tmp_path, inside, "inside.pth"))
    assert raw.tensors["w"].tolist() == [-largest, 1.0] and raw.tensors["empty"].numel() == 0
    beyond = float(np.nextafter(largest, np.inf))
    outside = _save(tmp_path, {"w": torch.tensor([1.0, -beyond], dtype=torch.float64)}, "o.pth")
    assert _refusal(outside) == (
        f"{outside}: the top-level dict: 'w' holds 3.4e+38, beyond float32's range (3.4e+38) "
        "that the network runs in"
    )


def test_a_view_reaching_past_its_storage_is_named() -> None:
    base = torch.arange(4.0)
    view = base[2:]  # the storage's elements 2 and 3
    assert reader._tensor_problem(view) is None  # ends on the storage's last element
    base.untyped_storage().resize_(3 * 4)  # the storage now holds 3 floats: element 3 is gone
    assert reader._tensor_problem(view) == (
        "a view of 2 elements over a storage of 3 (shape [2], strides [1])"
    )


def test_a_linked_record_folder_is_named(tmp_path: Path) -> None:
    records = _unzip(_save(tmp_path, NET, "elsewhere.pth"), tmp_path / "elsewhere")
    holder = tmp_path / "holder"
    holder.mkdir()
    (holder / "linked").symlink_to(records)
    assert _refusal(holder) == f"{holder}: 'linked' is a symbolic link; refused"


def test_a_reason_keeps_its_last_letter() -> None:
    assert reader._reason(ValueError("no record named X.")) == "no record named X"


class _EndlessFile(io.RawIOBase):
    """A file that never ends (a device or a growing file behind a regular one's name): a bounded
    read gets all it asks for; an unbounded one could never return."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("an unbounded read of an endless file")
        return bytes(size)


def test_an_endless_file_is_read_only_up_to_the_bound(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, "endless.pth", b"PK\x03\x04")
    monkeypatch.setattr(reader, "_CHUNK", 64)
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(Path, "open", lambda self, *args, **kwargs: _EndlessFile())
    assert _refusal(path) == f"{path}: grew past the 100-byte limit while read"
    assert reader._read_bounded(path, 100) is None


def test_the_dict_entry_bound_holds_for_a_legacy_file_cut_after_its_object(tmp_path, monkeypatch):
    import pickletools

    whole = _save(tmp_path, WITH_OPTIMIZER, "old.pth", _use_new_zipfile_serialization=False)
    stream = io.BytesIO(whole.read_bytes())
    for _ in range(4):  # magic number, protocol version, sys_info, the object (torch's order)
        for _opcode in pickletools.genops(stream):
            pass
    cut = _write(tmp_path, "cut.pth", whole.read_bytes()[: stream.tell()])  # no storage keys
    monkeypatch.setattr(reader, "MAX_DICT_ENTRIES", 11)  # 12 entries, as counted above
    assert _refusal(cut) == (
        f"{cut}: its pickle would fill dicts with over 11 entries (a released checkpoint, "
        "optimizer state included, has under 3,000); refused before unpickling"
    )


def test_the_dict_entry_bound_counts_a_legacy_files_storage_keys(tmp_path, monkeypatch):
    """The fifth pickle (the storage keys, a list) is unpickled too: a dict there is counted."""
    import pickle
    import pickletools

    data = _save(tmp_path, WITH_OPTIMIZER, "old.pth", _use_new_zipfile_serialization=False)
    stream = io.BytesIO(data.read_bytes())
    ends = []
    for _ in range(5):  # magic number, protocol version, sys_info, the object, storage keys
        for _opcode in pickletools.genops(stream):
            pass
        ends.append(stream.tell())
    whole = data.read_bytes()
    keys = pickle.dumps({"k": 1}, protocol=2)  # one dict entry where a list should be
    path = _write(tmp_path, "keys.pth", whole[: ends[3]] + keys + whole[ends[4] :])
    monkeypatch.setattr(reader, "MAX_DICT_ENTRIES", 12)  # what the first four pickles hold
    assert _refusal(path) == (
        f"{path}: its pickle would fill dicts with over 12 entries (a released checkpoint, "
        "optimizer state included, has under 3,000); refused before unpickling"
    )
