"""A generator of hostile checkpoint inputs (no binary blobs are committed): each function writes
one crafted input under a folder and returns its path. Used by test_hostile.py and by hand:

    python tests/checkpoints/hostile.py OUT_DIR
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import sys
import zipfile
from pathlib import Path

import torch


def _torch_zip(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def nested_tuple_key(folder: Path, levels: int = 26) -> Path:
    """A dict key that is a tuple nested `levels` deep, each level holding the one below twice
    (shared references): 1.4 KB on disk, 2**levels nodes for anything that walks it."""
    key: object = "x"
    for _ in range(levels):
        key = (key, key)
    path = folder / "nested_key.pth"
    path.write_bytes(_torch_zip({key: torch.zeros(1), "network": {"a": torch.zeros(1)}}))
    return path


def nested_epoch(folder: Path, levels: int = 26) -> Path:
    value: object = 1
    for _ in range(levels):
        value = (value, value)
    path = folder / "nested_epoch.pth"
    path.write_bytes(_torch_zip({"epoch": value, "network": {"a": torch.zeros(1)}}))
    return path


def _patch_sizes(data: bytes, declared: int) -> bytes:
    """Rewrite every record's declared uncompressed size (local and central headers)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := out.find(signature, start)) != -1:
            struct.pack_into("<I", out, start + offset, declared)
            start += 4
    return bytes(out)


def _deflated_archive(records: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in records.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def zip_bomb_declared(folder: Path) -> Path:
    """Records that declare 4 GB each: refused from the directory alone."""
    records = {"a/data.pkl": pickle.dumps({}), "a/version": b"3\n", "a/data/0": b"\0" * 1000}
    path = folder / "bomb_declared.pth"
    path.write_bytes(_patch_sizes(_deflated_archive(records), 0xF0000000))
    return path


def zip_bomb_understated(folder: Path, inflated: int = 64 * 1024 * 1024) -> Path:
    """A record that declares 1 KB but inflates to `inflated` bytes."""
    records = {"a/data.pkl": pickle.dumps({}), "a/version": b"3\n", "a/data/0": b"\0" * inflated}
    path = folder / "bomb_understated.pth"
    path.write_bytes(_patch_sizes(_deflated_archive(records), 1024))
    return path


def zip_method(folder: Path, method: int, name: str) -> Path:
    records = {"a/data.pkl": pickle.dumps({}), "a/version": b"3\n"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for record, content in records.items():
            archive.writestr(record, content)
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            struct.pack_into("<H", data, start + offset, method)
            start += 4
    path = folder / name
    path.write_bytes(bytes(data))
    return path


def zip_encrypted(folder: Path) -> Path:
    path = zip_method(folder, zipfile.ZIP_STORED, "encrypted.pth")
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            flags = struct.unpack_from("<H", data, start + offset)[0]
            struct.pack_into("<H", data, start + offset, flags | 0x1)
            start += 4
    path.write_bytes(bytes(data))
    return path


def zip_duplicate(folder: Path, good: bytes) -> Path:
    """A real archive with its data/0 record added a second time, other bytes."""
    buffer = io.BytesIO(good)
    with zipfile.ZipFile(buffer) as archive:
        names = archive.namelist()
    record = next(n for n in names if n.endswith("/data/0"))
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr(record, b"\x7f" * len(good[:16]))
    path = folder / "duplicate.pth"
    path.write_bytes(buffer.getvalue())
    return path


def _zero_crc(data: bytes, record: str) -> bytes:
    """Zero one record's CRC-32 field in its local header and its central directory entry."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        struct.pack_into("<I", out, archive.getinfo(record).header_offset + 14, 0)
    start = 0
    while (start := out.find(b"PK\x01\x02", start)) != -1:
        name_length = struct.unpack_from("<H", out, start + 28)[0]
        if out[start + 46 : start + 46 + name_length] == record.encode():
            struct.pack_into("<I", out, start + 16, 0)
        start += 4
    return bytes(out)


def _replace_tail(data: bytes, record: str, tail: bytes) -> bytes:
    """Overwrite the last bytes of a stored record's data."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(record)
        name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
        end = info.header_offset + 30 + name_length + extra_length + info.compress_size
    out[end - len(tail) : end] = tail
    return bytes(out)


def _last_storage(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [n for n in archive.namelist() if "/data/" in n and not n.endswith("/")][-1]


# float32 2.0: a plausible value nothing but a checksum can tell from the original
_PLAUSIBLE_FLOAT = struct.pack("<f", 2.0)


def zip_zeroed_crc(folder: Path, good: bytes) -> Path:
    """A real torch archive whose last storage ends in another (finite) float, with that record's
    CRC field zeroed, so a reader that treats 0 as "no CRC" loads the changed value."""
    record = _last_storage(good)
    path = folder / "zeroed_crc.pth"
    path.write_bytes(_zero_crc(_replace_tail(good, record, _PLAUSIBLE_FLOAT), record))
    return path


def zip_without_crc(folder: Path, payload: object, corrupt: bool = False) -> Path:
    """What torch.save writes with set_crc32_options(False): every CRC field 0; corrupt turns
    the last float32 of the last storage into a NaN (all bits set), which in such an archive
    only the values themselves can reveal."""
    previous = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(False)
    try:
        data = _torch_zip(payload)
    finally:
        torch.serialization.set_crc32_options(previous)
    path = folder / ("without_crc_corrupt.pth" if corrupt else "without_crc.pth")
    path.write_bytes(_replace_tail(data, _last_storage(data), b"\xff" * 4) if corrupt else data)
    return path


def folder_with_link(folder: Path, unzipped: Path, outside: Path) -> Path:
    """An unzipped checkpoint whose data/0 is a symbolic link to a file outside it."""
    target = unzipped / "data" / "0"
    target.unlink()
    target.symlink_to(outside)
    return unzipped


def colliding_keys(folder: Path, count: int = 100_000) -> Path:
    """A release whose optimizer dict has `count` int keys that all hash to 0 (multiples of
    2^61 - 1, the modulus of Python's int hash): inserting them is quadratic (minutes).

    Building such a dict here would be just as slow, so torch saves the pairs as a flat list and
    the list's opcodes are then turned into a dict's (EMPTY_LIST -> EMPTY_DICT, APPENDS ->
    SETITEMS), found by walking the opcodes, never by searching the bytes."""
    pairs: list[int] = []
    for k in range(1, count + 1):
        pairs += [k * (2**61 - 1), 0]
    state = {"network": {"backbone.norm.weight": torch.ones(3)}, "optimizer": pairs}
    archive = zipfile.ZipFile(io.BytesIO(_torch_zip(state)))
    records = {name: archive.read(name) for name in archive.namelist()}
    name = next(n for n in records if n.endswith("data.pkl"))
    data = bytearray(records[name])
    swaps = {"EMPTY_LIST": b"}", "APPENDS": b"u"}
    for opcode, _arg, position in pickletools.genops(bytes(data)):
        if opcode.name in swaps:
            data[position : position + 1] = swaps[opcode.name]
    records[name] = bytes(data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as patched:
        for record, content in records.items():
            patched.writestr(record, content)
    path = folder / "colliding_keys.pth"
    path.write_bytes(buffer.getvalue())
    return path


def folder_linking_records(folder: Path, unzipped: Path) -> Path:
    """A folder whose one child is a symbolic link to an unzipped checkpoint's records
    elsewhere (the records themselves hold no link)."""
    holder = folder / "holder"
    holder.mkdir()
    os.symlink(unzipped.resolve(), holder / unzipped.name)
    return holder


def deep_folder(folder: Path, depth: int = 1100) -> Path:
    records = folder / "deep"
    records.mkdir()
    (records / "data.pkl").write_bytes(pickle.dumps({}))
    (records / "version").write_bytes(b"3\n")
    current = records
    for _ in range(depth):  # one mkdir at a time: os.makedirs recurses per level
        current = current / "d"
        current.mkdir()
    return records


def remove_deep_folder(records: Path) -> None:
    """Undo deep_folder one level at a time (shutil.rmtree recurses per level and would fail)."""
    bottom = records
    while (bottom / "d").is_dir():
        bottom = bottom / "d"
    while bottom != records:
        bottom.rmdir()
        bottom = bottom.parent
    for path in records.iterdir():
        path.unlink()
    records.rmdir()


def sparse_huge(folder: Path, size: int = 64 * 1024**3) -> Path:
    path = folder / "huge.pth"
    with path.open("wb") as handle:
        handle.write(b"PK\x03\x04")
        handle.truncate(size)
    return path


ODD_TENSORS = ("meta", "sparse", "quantized", "zero_stride", "float8", "uint16", "float64_huge")


def odd_tensor(folder: Path, kind: str) -> Path:
    """A checkpoint whose one tensor is of a kind no weight is (ODD_TENSORS)."""
    makers = {
        "meta": lambda: torch.empty(3, device="meta"),
        "sparse": lambda: torch.eye(3).to_sparse(),
        "quantized": lambda: torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8),
        # 2^32 elements over one float: a 14 MB file that materialises as 16 GB.
        "zero_stride": lambda: torch.ones(1).expand(65536, 65536),
        "float8": lambda: torch.ones(3).to(torch.float8_e4m3fn),
        "uint16": lambda: torch.ones(3, dtype=torch.uint16),
        # Finite in float64, inf once the network's float32 holds it.
        "float64_huge": lambda: torch.full((3,), 1e300, dtype=torch.float64),
    }
    path = folder / f"{kind}.pth"
    path.write_bytes(_torch_zip({"network": {"backbone.norm.weight": makers[kind]()}}))
    return path


ODD_EPOCHS = ("digits", "complex", "meta", "complex_tensor", "float_huge")


def odd_epoch(folder: Path, kind: str) -> Path:
    """A checkpoint whose epoch is no count (ODD_EPOCHS): each used to end in a traceback."""
    epochs = {
        "digits": 10**200,  # pickled as LONG1 (the loader refuses LONG4): past any epoch count
        "complex": 3 + 4j,
        "meta": torch.empty((), dtype=torch.int64, device="meta"),
        "complex_tensor": torch.tensor(1 + 1j),
        "float_huge": 1e300,
    }
    state = {"epoch": epochs[kind], "network": {"backbone.norm.weight": torch.ones(3)}}
    path = folder / f"epoch_{kind}.pth"
    path.write_bytes(_torch_zip(state))
    return path


def deep_safetensors_header(folder: Path, levels: int = 100_000) -> Path:
    """A safetensors file whose JSON header nests deeper than Python's recursion limit."""
    header = ('{"a":' * levels + "1" + "}" * levels).encode()
    path = folder / "deep.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def negative_variance(folder: Path) -> Path:
    """The released XS with one BatchNorm variance below zero."""
    from safetensors.torch import save_file

    from converter.checkpoints.released import load_released

    state = dict(load_released().state_dict)
    state["backbone.norm.running_var"] = state["backbone.norm.running_var"].clone()
    state["backbone.norm.running_var"][5] = -1.0
    path = folder / "negative_var.safetensors"
    save_file(state, str(path))
    return path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for make in (nested_tuple_key, nested_epoch, zip_bomb_declared, zip_bomb_understated,
                 zip_encrypted, deep_folder, sparse_huge):  # fmt: skip
        print(make(out))
    print(zip_method(out, zipfile.ZIP_BZIP2, "bzip2.pth"))
    print(zip_method(out, 99, "method99.pth"))
    for kind in ODD_TENSORS:
        print(odd_tensor(out, kind))
    for kind in ODD_EPOCHS:
        print(odd_epoch(out, kind))
    print(deep_safetensors_header(out))
    print(colliding_keys(out))
    print(negative_variance(out))
    state = {"network": {"conv.weight": torch.ones(4, 3), "bn.running_var": torch.ones(4)}}
    print(zip_zeroed_crc(out, _torch_zip(state)))
    print(zip_without_crc(out, state, corrupt=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
