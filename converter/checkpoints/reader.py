"""Read a checkpoint in whatever form a user has it, and unwrap the network state dict.

This is the only module that opens checkpoint files. Its one job is reading: keys are returned
exactly as stored (``module.`` prefixes, legacy head names and all); renaming and variant
detection happen on ``RawCheckpoint.tensors`` elsewhere (converter/checkpoints/canonical.py).

Forms (facts §2.2): a torch zip archive under any file name and any record prefix; the directory a
user gets by unzipping one; torch's pre-1.6 non-zip format; safetensors. Containers (§2.3):
``{'epoch', 'network', 'optimizer'}``, ``{'state_dict'}`` (optionally with ``cnp_metadata``),
``{'model'}``, or a bare name -> tensor dict. Optimizer state and other extras are dropped.

Safety: every pickle goes through ``torch.load(weights_only=True)`` and there is deliberately no
way to turn that off; a pickle that names a disallowed callable is refused before it runs.

Each file is read from disk exactly once: its bytes are hashed as they stream in and then parsed
from memory, so the sha256 always describes the very bytes that were loaded.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load

from ..core.errors import CheckpointError, UnsafeCheckpointError

CONTAINER_ZIP = "torch-zip"
CONTAINER_DIRECTORY = "unzipped-directory"
CONTAINER_LEGACY = "torch-legacy"
CONTAINER_SAFETENSORS = "safetensors"

WRAPPER_RELEASE = "epoch/network/optimizer"
WRAPPER_STATE_DICT = "state_dict"
WRAPPER_MODEL = "model"
WRAPPER_BARE = "bare"
WRAPPER_SAFETENSORS = "safetensors"

# Top-level key holding the network -> the wrapper name reported for it.
_WRAPPER_KEYS = {
    "network": WRAPPER_RELEASE,
    "state_dict": WRAPPER_STATE_DICT,
    "model": WRAPPER_MODEL,
}
_METADATA_KEY = "cnp_metadata"

_CHUNK = 8 * 1024 * 1024
# Input limits. The released files are 14-101 MB with ~260 tensors in one flat folder; these
# bounds sit far above any real checkpoint and far below what a crafted file could make us spend.
MAX_FILE_BYTES = 4 * 1024**3  # a file (or a folder's files together) larger than this is refused
MAX_INFLATED_BYTES = 4 * 1024**3  # total declared size of a zip's records
MAX_FOLDER_FILES = 100_000
MAX_FOLDER_DEPTH = 8  # data/0 sits at depth 2; .data/serialization_id at 2
MAX_TENSORS = 100_000
# Dict entries a checkpoint's pickle may insert, all dicts together: the released XS has 746 and
# a fabricated L about 1,000 (optimizer state included); 16,384 bounds the quadratic cost of keys
# that all hash alike to seconds.
MAX_DICT_ENTRIES = 16_384
# What weights and BatchNorm counters are stored as; float8, unsigned and the rest are refused
# by name before anything reads their values.
TENSOR_DTYPES = frozenset(
    {torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32}
)
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
INTEGER_DTYPES = frozenset({torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8})
MAX_EPOCH = 10**9  # more epochs than anyone trains; and a 5,000-digit int cannot be printed
# torch.save's pre-1.6 format opens with this number pickled (protocol 2 by default).
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[2:]
# Name under which an unzipped directory's records are repacked; torch accepts any prefix.
_REPACK_PREFIX = "archive"
_ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length

# Pickle opcodes that build objects from a named global; weights-only loading rejects them as
# "Unsupported operand N", and for these that refusal is a safety one, not a format one.
_CODE_OPCODES = {105: "INST", 111: "OBJ", 146: "NEWOBJ_EX", 147: "STACK_GLOBAL"}
_UNSAFE_PATTERNS = (
    re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)"),
    re.compile(r"unrecognized function (.+?)(?: which belongs to .*)?$", re.MULTILINE),
    re.compile(r"classes allowlisted via `add_safe_globals` but got (.+)$", re.MULTILINE),
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class RawCheckpoint:
    """A checkpoint as stored: where it came from, how it was wrapped, and its network tensors."""

    path: Path  # as given by the user
    container: str  # "torch-zip" | "unzipped-directory" | "torch-legacy" | "safetensors"
    archive_prefix: str | None  # zip record prefix or unzipped directory name; else None
    wrapper: str  # "epoch/network/optimizer" | "state_dict" | "model" | "bare" | "safetensors"
    tensors: dict[str, torch.Tensor]  # network state dict, keys untouched, CPU
    epoch: int | None
    # Of the file. Of a directory: over its files in sorted relative-path order, each framed as
    # "path NUL size NUL" followed by its bytes (see _read_directory).
    sha256: str
    size_bytes: int  # file size, or total size of the directory's files
    header_metadata: dict[str, str]  # safetensors __metadata__ or a .pth's cnp_metadata; else {}


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """Read any supported checkpoint form; raise CheckpointError (one line, path first) if not.

    A directory may be the unzipped record folder itself (holding data.pkl) or a folder holding
    exactly one such record folder. Raises UnsafeCheckpointError for pickles that would run code.
    """
    given = Path(path)
    if given.is_dir():
        return _read_directory(given)
    if not given.exists():
        raise _error(given, "no such file or directory")
    if not given.is_file():
        raise _error(given, "not a regular file or directory")

    data, sha256 = _read_and_hash(given)
    size = len(data)
    container = _sniff(given, data)
    if container == CONTAINER_SAFETENSORS:
        tensors, metadata = _load_safetensors(given, data)
        return RawCheckpoint(
            path=given,
            container=container,
            archive_prefix=None,
            wrapper=WRAPPER_SAFETENSORS,
            tensors=_state_dict(given, tensors, "the safetensors file"),
            epoch=_epoch(given, None, metadata),
            sha256=sha256,
            size_bytes=size,
            header_metadata=metadata,
        )
    prefix = _check_zip(given, data) if container == CONTAINER_ZIP else None
    obj = _torch_load(given, io.BytesIO(data), container)  # BytesIO shares, not copies, bytes
    del data  # free the raw bytes before unwrapping
    return _unwrap(given, obj, container, prefix, sha256, size)


# --- reading bytes -----------------------------------------------------------------------------


def _read_and_hash(path: Path) -> tuple[bytes, str]:
    """The whole file, bounded: refused by its size before a byte is read, and never read past
    the bound even if it grows meanwhile."""
    digest = hashlib.sha256()
    chunks = []
    total = 0
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _error(
                path, f"{size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for a checkpoint"
            )
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                total += len(chunk)
                if total > MAX_FILE_BYTES:
                    raise _error(path, f"grew past the {MAX_FILE_BYTES:,}-byte limit while read")
                digest.update(chunk)
                chunks.append(chunk)
    except OSError as exc:
        raise _error(path, f"cannot read ({exc.strerror or exc})") from exc
    return b"".join(chunks), digest.hexdigest()


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None as soon as there are more than limit (no large preallocation)."""
    chunks, total = [], 0
    with path.open("rb") as handle:
        while chunk := handle.read(min(_CHUNK, limit - total + 1)):
            total += len(chunk)
            if total > limit:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def _sniff(path: Path, data: bytes) -> str:
    """Name the container from the leading bytes (never the file name), or explain what it is."""
    if not data:
        raise _error(path, "empty file (0 bytes), not a checkpoint")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return CONTAINER_ZIP
    if data[:1] == b"\x80" and data.startswith(_LEGACY_MAGIC, 2):
        return CONTAINER_LEGACY
    if len(data) >= 10 and data[8:9] == b"{":  # safetensors: u64 header length, then JSON
        return CONTAINER_SAFETENSORS
    if data[:1] == b"\x80":
        if path.name == "data.pkl":
            raise _error(
                path,
                "is one record of an unzipped checkpoint; pass the folder that holds it "
                f"({path.parent})",
            )
        raise _error(
            path,
            "is a plain Python pickle, not a torch.save checkpoint (no torch magic number); "
            "it cannot be loaded safely",
        )
    if path.suffix.lower() == ".onnx":
        raise _error(path, "is an ONNX graph, not a checkpoint; check it with `cnp-convert verify`")
    raise _error(path, _describe_foreign(path, data))


def _describe_foreign(path: Path, data: bytes) -> str:
    """What a non-checkpoint file is, so a user sees e.g. that a download returned a web page."""
    if data.startswith(b"\xff\xd8\xff"):
        return "is a JPEG image, not a checkpoint"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "is a PNG image, not a checkpoint"
    if data.startswith(b"\x1f\x8b"):
        return "is gzip-compressed data, not a checkpoint (decompress it first)"
    if data[257:262] == b"ustar":
        return (
            "is a real tar archive, not a checkpoint (the released .tar files are torch zip "
            "archives); extract it and point at the checkpoint inside"
        )
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "is an HTML page, not a checkpoint (a failed or blocked download?)"
    if head[:1] in (b"{", b"["):
        try:
            json.loads(data)
        except ValueError:
            pass
        else:
            return "is a JSON file, not a checkpoint"
    if path.suffix == ".safetensors":
        return "not a valid safetensors file (no JSON header after the 8-byte length)"
    if b"\0" not in data[:4096]:
        try:
            # final=False: a character cut by the 4096-byte prefix is not an encoding error.
            codecs.getincrementaldecoder("utf-8")().decode(data[:4096], final=False)
        except UnicodeDecodeError:
            pass
        else:
            return "is a text file, not a checkpoint"
    return (
        f"unrecognised file format (starts with {data[:8].hex(' ')}); expected a torch "
        "checkpoint (zip or pre-1.6 format), an unzipped checkpoint directory or safetensors"
    )


# --- torch zip archives and directories ----------------------------------------------------------


def _check_zip(path: Path, data: bytes) -> str:
    """Validate a torch zip archive before torch sees it; return its record prefix.

    torch does not verify the zip's CRC-32s, so flipped bytes in a storage would load silently;
    checking them here is what makes "the tensors are exactly what was released" true.
    """
    corrupt = "truncated or corrupt torch zip archive"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if not infos:
                raise _error(path, "empty zip archive, not a checkpoint")
            _check_zip_records(path, infos)
            names = {info.filename for info in infos}
            prefix = _zip_prefix(path, infos[0].filename, names)
            view = memoryview(data)
            # torch.save writes every record's CRC-32, or (set_crc32_options(False)) none: a
            # zero field where the others carry one is a record whose check was wiped.
            carries_crc = any(info.CRC for info in infos)
            for info in infos:
                if not _crc_ok(archive, view, info, carries_crc):
                    what = "CRC field zeroed" if info.CRC == 0 else "CRC mismatch"
                    raise _error(path, f"{corrupt} ({what} in record {_brief(info.filename)})")
    except (zipfile.BadZipFile, struct.error, zlib.error, ValueError, EOFError) as exc:
        reason = _reason(exc)
        if reason == "File is not a zip file":  # zipfile's words for "no end-of-archive record"
            reason = "no central directory at the end, the file is probably cut short"
        raise _error(path, f"{corrupt} ({reason}; {len(data)} bytes)") from exc
    return prefix


def _check_zip_records(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse what torch and zipfile would read differently, or what costs more than it holds."""
    if len(infos) > MAX_FOLDER_FILES:
        raise _error(path, f"zip archive with {len(infos):,} records (limit {MAX_FOLDER_FILES:,})")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise _error(path, f"zip archive holds the record {_brief(duplicate)} twice")
    declared = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _error(path, f"zip record {_brief(info.filename)} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _error(
                path,
                f"zip record {_brief(info.filename)} uses compression method "
                f"{info.compress_type} (torch archives are stored or deflated)",
            )
        declared += info.file_size
    if declared > MAX_INFLATED_BYTES:
        raise _error(
            path, f"zip records declare {declared:,} bytes, over the {MAX_INFLATED_BYTES:,} limit"
        )


def _zip_prefix(path: Path, first: str, names: set[str]) -> str:
    # torch takes the archive's prefix from the first record's folder, as the reader here does.
    if "/" not in first:
        raise _error(path, f"zip archive whose first record {first!r} is not inside a folder")
    prefix = first.split("/", 1)[0]
    if f"{prefix}/data.pkl" not in names:
        shown = ", ".join(sorted(names)[:4])
        what = f"zip archive without {prefix}/data.pkl, not a torch checkpoint"
        raise _error(path, f"{what} (holds {shown}, ...)")
    if f"{prefix}/constants.pkl" in names:
        raise _error(path, "is a TorchScript archive (torch.jit.save), not a checkpoint")
    if not ({f"{prefix}/version", f"{prefix}/.data/version"} & names):
        raise _error(path, f"truncated or corrupt torch zip archive (no {prefix}/version record)")
    return prefix


def _crc_ok(
    archive: zipfile.ZipFile, view: memoryview, info: zipfile.ZipInfo, carries_crc: bool
) -> bool:
    if info.compress_type != zipfile.ZIP_STORED:
        # Streamed: zipfile checks the CRC at the end and refuses to inflate past the declared
        # size, so a small record that claims little and inflates to gigabytes stops early.
        with archive.open(info) as stream:
            while stream.read(_CHUNK):
                pass
        return True
    if info.CRC == 0 and not carries_crc:
        return True  # a CRC-less archive (torch's set_crc32_options(False)): nothing to check
    signature, name_len, extra_len = _ZIP_LOCAL_HEADER.unpack_from(view, info.header_offset)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_len + extra_len
    stored = view[start : start + info.compress_size]
    return len(stored) == info.compress_size and zlib.crc32(stored) == info.CRC


def _read_directory(given: Path) -> RawCheckpoint:
    """Load an unzipped archive in place: repack its records into an in-memory zip (no disk)."""
    records = _find_record_dir(given)
    prefix = Path(os.path.abspath(records)).name  # abspath: "." still gets its real name
    # sha256 framing per file, in sorted path order: "path NUL size NUL" then the bytes, so
    # the hash is unambiguous (moving bytes from one file into the next changes it).
    digest = hashlib.sha256()
    total = 0
    buffer = io.BytesIO()
    try:
        files = _list_files(records)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as repacked:
            for relative in files:
                content = _read_bounded(records / relative, MAX_FILE_BYTES - total)
                if content is None:
                    raise _error(given, "folder grew past the size limit while read")
                digest.update(f"{relative}\0{len(content)}\0".encode())
                digest.update(content)
                total += len(content)
                repacked.writestr(f"{_REPACK_PREFIX}/{relative}", content)
    except OSError as exc:
        raise _error(given, f"cannot read {exc.filename or records} ({exc.strerror})") from exc
    if "version" not in files and ".data/version" not in files:
        raise _error(given, f"incomplete unzipped checkpoint {prefix}: data.pkl but no 'version'")
    buffer.seek(0)
    obj = _torch_load(given, buffer, CONTAINER_DIRECTORY)
    return _unwrap(given, obj, CONTAINER_DIRECTORY, prefix, digest.hexdigest(), total)


def _find_record_dir(given: Path) -> Path:
    if (given / "data.pkl").is_file():
        return given
    try:
        children = sorted(given.iterdir())
    except OSError as exc:
        raise _error(given, f"cannot list directory ({exc.strerror})") from exc
    found = [child for child in children if (child / "data.pkl").is_file()]
    for child in found:
        # The folder given is the one read: a link in it to records elsewhere is not followed.
        if child.is_symlink():
            raise _error(given, f"{_brief(child.name)} is a symbolic link; refused")
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(child.name for child in found)
        raise _error(given, f"holds {len(found)} unzipped checkpoints ({names}); point at one")
    seen = ", ".join(child.name for child in children[:6]) or "nothing"
    raise _error(
        given,
        "directory without data.pkl: expected an unzipped torch checkpoint (data.pkl, version, "
        f"data/0..N) or a folder holding exactly one; found {seen}",
    )


def _list_files(records: Path) -> list[str]:
    """Every file under the record folder, as sorted POSIX relative paths (hash order).

    Bounded and contained: no symbolic link (a data/0 that points outside the folder would be
    read into the output), nothing but regular files and folders, at most MAX_FOLDER_DEPTH deep
    and MAX_FOLDER_FILES in all, sizes summed against MAX_FILE_BYTES, all before any read.
    """
    files: list[str] = []
    total = 0
    pending = [(records, 0)]
    while pending:
        folder, depth = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                relative = Path(entry.path).relative_to(records).as_posix()
                if entry.is_symlink():
                    raise _error(records, f"{_brief(relative)} is a symbolic link; refused")
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 >= MAX_FOLDER_DEPTH:
                        raise _error(records, f"folders nested deeper than {MAX_FOLDER_DEPTH}")
                    pending.append((Path(entry.path), depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                    files.append(relative)
                else:
                    raise _error(records, f"{_brief(relative)} is not a regular file; refused")
                if len(files) > MAX_FOLDER_FILES or total > MAX_FILE_BYTES:
                    raise _error(records, "folder too large for a checkpoint")
    return sorted(files)


# --- unpickling ----------------------------------------------------------------------------------


def _dict_entries(data: bytes, pickles: int = 1) -> int:
    """Entries the first `pickles` pickles in data would insert into dicts (SETITEM, SETITEMS),
    counted from the opcodes alone: a walk of the stack depth, nothing built."""
    entries = 0
    mark = pickletools.markobject
    stream = io.BytesIO(data)  # genops stops after each STOP: the next pickle follows
    for _ in range(pickles):
        depth, marks = 0, []
        for opcode, _arg, _position in pickletools.genops(stream):
            before, after = opcode.stack_before, opcode.stack_after
            if opcode.name == "MARK":
                marks.append(depth)
                continue
            if mark in before:
                start = marks.pop()
                if opcode.name == "SETITEMS":
                    entries += (depth - start) // 2
                depth = start - before.index(mark)
            else:
                depth -= len(before)
                entries += opcode.name == "SETITEM"
            depth += len(after)
            if entries > MAX_DICT_ENTRIES:
                return entries
    return entries


def _check_pickle_size(path: Path, source: io.BytesIO, container: str) -> None:
    """Refuse a pickle that would build more dict entries than any checkpoint holds, before it
    is unpickled: 100,000 keys of equal hash take minutes to insert (each probes all the others)."""
    try:
        if container == CONTAINER_LEGACY:
            # magic number, protocol version, sys_info, the object, its storage keys
            entries = _dict_entries(source.getbuffer().tobytes(), pickles=5)
        else:
            with zipfile.ZipFile(source) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                entries = _dict_entries(archive.read(name))
    except Exception:  # a pickle this walk cannot read: torch.load says what is wrong with it
        return
    finally:
        source.seek(0)
    if entries > MAX_DICT_ENTRIES:
        raise _error(
            path,
            f"its pickle would fill dicts with over {MAX_DICT_ENTRIES:,} entries (a released "
            "checkpoint, optimizer state included, has under 3,000); refused before unpickling",
        )


def _torch_load(path: Path, source: io.BytesIO, container: str) -> object:
    """torch.load with weights_only=True and nothing else; translate failures into one line."""
    _check_pickle_size(path, source, container)
    try:
        # torch warns (several lines) about e.g. quantized or sparse storages it is rebuilding;
        # whether they are acceptable is decided afterwards, in one line of our own.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, str(exc)) from None
    except RecursionError:
        raise _error(path, "its pickle nests objects too deeply to be a checkpoint") from None
    except MemoryError:
        raise _error(path, "its pickle asks for more memory than this machine has") from None
    except Exception as exc:  # torch reports corruption as RuntimeError, EOFError, KeyError, ...
        what = {
            CONTAINER_ZIP: "truncated or corrupt torch zip archive",
            CONTAINER_LEGACY: "truncated or corrupt torch pre-1.6 (non-zip) checkpoint",
            CONTAINER_DIRECTORY: "incomplete or corrupt unzipped checkpoint directory",
        }[container]
        reason = _reason(exc).replace(f"{_REPACK_PREFIX}/", "")
        raise _error(path, f"{what} ({reason})") from exc


def _refusal(path: Path, message: str) -> CheckpointError:
    """Classify a weights-only refusal: a disallowed global/callable, or a malformed pickle."""
    for pattern in _UNSAFE_PATTERNS:
        match = pattern.search(message)
        if match:
            name = match.group(1).strip()
            hint = ""
            if name.startswith(("torch.nn.modules.", "__main__.")):
                hint = " (a whole pickled model? save its state_dict instead)"
            return UnsafeCheckpointError(
                f"{path}: refused: the pickle references {name}, a callable/global that is not "
                f"allowed in a weights-only load; it was not executed{hint}"
            )
    operand = re.search(r"Unsupported operand (\d+)", message)
    if operand and int(operand.group(1)) in _CODE_OPCODES:
        opcode = _CODE_OPCODES[int(operand.group(1))]
        return UnsafeCheckpointError(
            f"{path}: refused: the pickle references a callable/global (opcode {opcode}) that is "
            "not allowed in a weights-only load; it was not executed"
        )
    inner = message.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation")[0]
    lines = [line for line in inner.splitlines() if line.strip()]
    reason = _one_line(lines[-1] if lines else message)
    return CheckpointError(
        f"{path}: its pickle cannot be read by the weights-only loader ({reason}); "
        "nothing in it was executed"
    )


# --- unwrapping ----------------------------------------------------------------------------------


def _unwrap(
    path: Path, obj: object, container: str, prefix: str | None, sha256: str, size: int
) -> RawCheckpoint:
    if not isinstance(obj, dict):
        raise _error(path, f"holds {_a(obj)}, not a dict with a state dict")
    if not obj:
        raise _error(path, "holds an empty dict, no state dict")
    if all(isinstance(value, torch.Tensor) for value in obj.values()):
        wrapper, metadata, epoch_value = WRAPPER_BARE, {}, None
        tensors = _state_dict(path, obj, "the top-level dict")
    else:
        present = [key for key in _WRAPPER_KEYS if key in obj]
        if not present:
            raise _error(path, f"no recognisable state dict: {_explain_missing(obj)}")
        if len(present) > 1:
            raise _error(path, f"ambiguous: holds several state dicts ({', '.join(present)})")
        key = present[0]
        wrapper = _WRAPPER_KEYS[key]
        tensors = _state_dict(path, obj[key], f"the '{key}' entry")
        metadata = _metadata(path, obj.get(_METADATA_KEY))
        epoch_value = obj.get("epoch")
    return RawCheckpoint(
        path=path,
        container=container,
        archive_prefix=prefix,
        wrapper=wrapper,
        tensors=tensors,
        epoch=_epoch(path, epoch_value, metadata),
        sha256=sha256,
        size_bytes=size,
        header_metadata=metadata,
    )


def _explain_missing(obj: dict) -> str:
    keys = ", ".join(_brief(key) for key in list(obj)[:8])
    more = ", ..." if len(obj) > 8 else ""
    return (
        "expected a 'network', 'state_dict' or 'model' entry, or a flat name -> tensor dict; "
        f"found keys {keys}{more}"
    )


def _state_dict(path: Path, value: object, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict):
        raise _error(path, f"{where} is {_a(value)}, not a state dict")
    if not value:
        raise _error(path, f"{where} is an empty state dict")
    if len(value) > MAX_TENSORS:
        raise _error(path, f"{where} holds {len(value):,} entries (limit {MAX_TENSORS:,})")
    tensors = {}
    for key, tensor in value.items():
        if not isinstance(key, str):
            raise _error(path, f"{where} is not a state dict: a key is {_a(key)}, not a string")
        if not isinstance(tensor, torch.Tensor):
            raise _error(
                path, f"{where} is not a state dict: {_brief(key)} is {_a(tensor)}, not a tensor"
            )
        problem = _tensor_problem(tensor)
        if problem:
            raise _error(path, f"{where}: {_brief(key)} is {problem}")
        # No weight or statistic of a usable network is NaN or infinite; this is also the one
        # check left on the values of an archive written without CRC-32s.
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            raise _error(
                path, f"{where}: {_brief(key)} holds {count:,} non-finite value(s) (NaN or inf)"
            )
        # The network runs in float32: a wider value would become inf there, silently.
        if tensor.dtype == torch.float64 and tensor.numel():
            largest = float(tensor.abs().max())
            if largest > FLOAT32_MAX:
                raise _error(
                    path,
                    f"{where}: {_brief(key)} holds {largest:.3g}, beyond float32's range "
                    f"({FLOAT32_MAX:.3g}) that the network runs in",
                )
        # Parameters come back with requires_grad; the values are the same, minus autograd.
        tensors[key] = tensor.detach() if tensor.requires_grad else tensor
    return tensors


def _metadata(path: Path, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise _error(path, f"'{_METADATA_KEY}' is not a dict of str -> str")
    return dict(value)


def _epoch(path: Path, value: object, metadata: dict[str, str]) -> int | None:
    """The stored epoch (facts §2.1: read it, never trust the file name); else metadata's."""
    if value is None:
        text = metadata.get("epoch", "")
        return int(text) if re.fullmatch(r"-?\d{1,9}", text) else None
    if (
        isinstance(value, torch.Tensor)
        and value.numel() == 1
        and value.device.type == "cpu"
        and value.layout == torch.strided
        and value.dtype in INTEGER_DTYPES
    ):
        value = int(value.item())
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EPOCH:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(path, f"'epoch' is {_brief(value)}, expected an integer")
    if abs(value) > MAX_EPOCH:
        raise _error(path, f"'epoch' is {_brief(value)}, not a count of training epochs")
    return value


# --- safetensors ---------------------------------------------------------------------------------


def _load_safetensors(path: Path, data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    corrupt = "truncated or corrupt safetensors file"
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise _error(path, f"{corrupt} (header of {length} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + length])
        tensors = safetensors_load(data)
    except RecursionError:
        raise _error(path, f"{corrupt} (its JSON header is nested too deeply)") from None
    except (ValueError, SafetensorError) as exc:
        raise _error(path, f"{corrupt} ({_reason(exc)})") from exc
    metadata = (header.get("__metadata__") or {}) if isinstance(header, dict) else {}
    return tensors, _metadata_from_header(path, metadata)


def _metadata_from_header(path: Path, metadata: object) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in metadata.items()
    ):
        raise _error(path, "safetensors __metadata__ is not a dict of str -> str")
    return dict(metadata)


# --- messages ------------------------------------------------------------------------------------


def _error(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {_one_line(what)}")


def _reason(exc: BaseException) -> str:
    """The gist of a library error: its first sentence, without torch's boilerplate advice."""
    text = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, EOFError) and text == "EOFError":
        return "unexpected end of file"
    first = text.split(". ", 1)[0].rstrip(".")
    return first[:200]


def _tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why a tensor cannot be a weight: checked before anything reads or prints it."""
    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor, not a dense one"
    if tensor.device.type != "cpu":
        return f"a tensor on the {tensor.device.type} device, with no data"
    if tensor.is_quantized:
        return "a quantized tensor"
    if tensor.dtype.is_complex:
        return "a complex tensor"
    if tensor.dtype not in TENSOR_DTYPES:
        return f"a {str(tensor.dtype).removeprefix('torch.')} tensor, not a weight's dtype"
    # A view may address no element outside its storage nor repeat one (a zero stride): a
    # [65536, 65536] view of one float passes torch.load and would make 2^32 elements of any
    # check that reads it.
    elements = tensor.untyped_storage().nbytes() // tensor.element_size()
    if tensor.numel():
        last = tensor.storage_offset() + sum(
            (size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride(), strict=True)
        )
        if last >= elements or tensor.numel() > elements:
            return (
                f"a view of {tensor.numel():,} elements over a storage of {elements:,} "
                f"(shape {list(tensor.shape)}, strides {list(tensor.stride())})"
            )
    return None


def _brief(value: object, limit: int = 60) -> str:
    """A bounded, one-line description of an untrusted value: never walks containers (a tuple
    nested with shared references can take exponential time and memory to repr)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if isinstance(value, bool | int | float) or value is None:
        text = (
            repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge int"
        )
        return text[:limit]
    return _a(value)


def _a(value: object) -> str:
    """'a list', 'an int': the type of a value, for messages."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _one_line(text: str) -> str:
    return " ".join(_ANSI.sub("", text).split())
