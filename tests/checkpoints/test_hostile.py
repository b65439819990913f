"""Hostile inputs end in one line naming the file, exit 2, quickly, and nothing is written."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import hostile
import pytest
from typer.testing import CliRunner

from converter.checkpoints.fabricate import unzip_release
from converter.checkpoints.reader import read_checkpoint
from converter.cli.main import app

runner = CliRunner()


def _refused(path: Path, *expected: str, seconds: float = 10.0) -> str:
    started = time.perf_counter()
    result = runner.invoke(app, ["inspect", str(path)])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    assert elapsed < seconds, f"{path.name} took {elapsed:.1f} s"
    return lines[0]


@pytest.mark.parametrize("make", [hostile.nested_tuple_key, hostile.nested_epoch])
def test_shared_nesting_is_not_walked(tmp_path: Path, make) -> None:
    _refused(make(tmp_path), str(tmp_path))


def test_zip_records_declaring_gigabytes_are_refused(tmp_path: Path) -> None:
    _refused(hostile.zip_bomb_declared(tmp_path), "declare", "limit")


def test_zip_record_inflating_past_its_size_stops_early(tmp_path: Path) -> None:
    _refused(hostile.zip_bomb_understated(tmp_path), "corrupt")


@pytest.mark.parametrize(
    ("method", "name"), [(zipfile.ZIP_BZIP2, "bzip2.pth"), (99, "m99.pth"), (14, "lzma.pth")]
)
def test_unsupported_compression_is_one_line(tmp_path: Path, method: int, name: str) -> None:
    _refused(hostile.zip_method(tmp_path, method, name), "compression method")


def test_encrypted_record(tmp_path: Path) -> None:
    _refused(hostile.zip_encrypted(tmp_path), "encrypted")


def test_duplicate_record_names(tmp_path: Path, release_file) -> None:
    good = release_file("XS").read_bytes()
    _refused(hostile.zip_duplicate(tmp_path, good), "twice")


def test_folder_link_to_outside_is_refused_before_reading(tmp_path: Path, release_file) -> None:
    unzipped = unzip_release(release_file("XS"), tmp_path / "unzipped")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(os.urandom(7680))
    hostile.folder_with_link(tmp_path, unzipped, secret)
    _refused(unzipped, "symbolic link")
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["legacy", str(unzipped), "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()


def test_special_files_are_refused(tmp_path: Path, release_file) -> None:
    fifo = tmp_path / "ckpt.pth"
    os.mkfifo(fifo)
    _refused(fifo, "not a regular file")
    _refused(Path("/dev/zero"), "not a regular file")
    unzipped = unzip_release(release_file("XS"), tmp_path / "unzipped")
    os.mkfifo(unzipped / "data" / "fifo")
    _refused(unzipped, "not a regular file")


def test_keys_that_all_hash_alike_are_refused_before_unpickling(tmp_path: Path) -> None:
    _refused(hostile.colliding_keys(tmp_path), "over 16,384 entries", seconds=5.0)


@pytest.mark.parametrize(("count", "refused"), [(16_384, False), (16_385, True)])
def test_the_dict_entry_bound_just_inside_and_outside(count: int, refused: bool) -> None:
    import pickle

    from converter.checkpoints.reader import MAX_DICT_ENTRIES, _dict_entries

    assert MAX_DICT_ENTRIES == 16_384
    # Counted by pickle's own batching (SETITEMS of 1,000) and one SETITEM per small dict.
    data = pickle.dumps({"a": dict.fromkeys(range(count - 1), 0)}, protocol=2)
    assert (_dict_entries(data) > MAX_DICT_ENTRIES) == refused


def test_a_linked_record_folder_is_not_followed(tmp_path: Path, release_file) -> None:
    records = unzip_release(release_file("XS"), tmp_path / "elsewhere")  # holds data.pkl
    holder = hostile.folder_linking_records(tmp_path, records)
    _refused(holder, "is a symbolic link; refused")


def test_deep_folder_is_refused_without_recursion(tmp_path: Path) -> None:
    deep = hostile.deep_folder(tmp_path)
    try:
        _refused(deep, "nested deeper")
    finally:  # pytest's own clean-up of old temporary folders would recurse 1,100 levels
        hostile.remove_deep_folder(deep)
    assert not deep.exists()


def test_huge_sparse_file_is_refused_by_its_size(tmp_path: Path) -> None:
    _refused(hostile.sparse_huge(tmp_path), "over the", seconds=2.0)


ODD_TENSOR_PROBLEMS = {
    "meta": "is a tensor on the meta device, with no data",
    "sparse": "is a sparse_coo tensor, not a dense one",
    "quantized": "is a quantized tensor",
    "zero_stride": (
        "is a view of 4,294,967,296 elements over a storage of 1 (shape [65536, 65536], "
        "strides [0, 0])"
    ),
    "float8": "is a float8_e4m3fn tensor, not a weight's dtype",
    "uint16": "is a uint16 tensor, not a weight's dtype",
    "float64_huge": "holds 1e+300, beyond float32's range (3.4e+38) that the network runs in",
}


@pytest.mark.parametrize("kind", hostile.ODD_TENSORS)
def test_odd_tensors_are_named(tmp_path: Path, kind: str) -> None:
    path = hostile.odd_tensor(tmp_path, kind)
    line = _refused(path, seconds=5.0)
    problem = ODD_TENSOR_PROBLEMS[kind]
    assert line == f"error: {path}: the 'network' entry: 'backbone.norm.weight' {problem}"


ODD_EPOCH_MESSAGES = {
    "digits": "'epoch' is a huge int, not a count of training epochs",
    "complex": "'epoch' is a complex, expected an integer",
    "meta": "'epoch' is a Tensor, expected an integer",
    "complex_tensor": "'epoch' is a Tensor, expected an integer",
    "float_huge": "'epoch' is 1e+300, expected an integer",
}


@pytest.mark.parametrize("kind", hostile.ODD_EPOCHS)
def test_odd_epochs_are_one_line(tmp_path: Path, kind: str) -> None:
    path = hostile.odd_epoch(tmp_path, kind)
    assert _refused(path) == f"error: {path}: {ODD_EPOCH_MESSAGES[kind]}"


def test_a_deeply_nested_safetensors_header_is_one_line(tmp_path: Path) -> None:
    path = hostile.deep_safetensors_header(tmp_path)
    assert _refused(path) == (
        f"error: {path}: truncated or corrupt safetensors file (its JSON header is nested too "
        "deeply)"
    )


def test_a_negative_variance_is_named_before_anything_is_written(tmp_path: Path) -> None:
    path = hostile.negative_variance(tmp_path)
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["legacy", str(path), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "backbone.norm.running_var holds a negative variance (-1)" in result.stderr
    assert not out.exists()


def test_control_characters_from_a_checkpoint_are_escaped(tmp_path: Path, release_file) -> None:
    evil = tmp_path / "ConvNeXtPose_XS\x1b[2K\rPASS.tar"
    evil.write_bytes(release_file("XS").read_bytes())
    result = runner.invoke(app, ["inspect", str(evil)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "\\x1b[2K\\rPASS.tar" in result.stdout


def test_a_record_file_or_a_graph_says_what_to_pass_instead(tmp_path: Path, release_file) -> None:
    unzipped = unzip_release(release_file("XS"), tmp_path / "unzipped")
    _refused(unzipped / "data.pkl", "pass the folder that holds it", str(unzipped))
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"\x08\x08\x12\x07pytorch")  # an ONNX protobuf's first bytes
    _refused(graph, "is an ONNX graph", "cnp-convert verify")


def test_a_zeroed_crc_among_crcs_is_refused(tmp_path: Path, release_file) -> None:
    """torch.save writes every record's CRC-32 or none (evidence: set_crc32_options(False) zeroes
    all of them); one zero among the others is a wiped check, here over a changed float."""
    good = release_file("XS").read_bytes()
    path = hostile.zip_zeroed_crc(tmp_path, good)
    _refused(path, "CRC field zeroed in record", "/data/")
    out = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["legacy", str(path), "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()


def test_an_archive_written_without_crcs_is_read(tmp_path: Path) -> None:
    import torch

    state = {"conv.weight": torch.arange(12.0).reshape(3, 4), "bn.running_var": torch.ones(4)}
    raw = read_checkpoint(hostile.zip_without_crc(tmp_path, {"network": state}))
    with zipfile.ZipFile(raw.path) as archive:
        assert {info.CRC for info in archive.infolist()} == {0}  # what torch wrote
    assert raw.tensors.keys() == state.keys()
    for key, tensor in state.items():
        assert torch.equal(raw.tensors[key], tensor)
    # with no CRC to check, a value no network holds is what remains detectable
    corrupt = hostile.zip_without_crc(tmp_path, {"network": state}, corrupt=True)
    _refused(corrupt, "holds 1 non-finite value(s)")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_named(tmp_path: Path, value: float) -> None:
    import torch

    weights = torch.ones(2, 3)
    weights[1, 2] = value
    path = tmp_path / "nonfinite.pth"
    torch.save({"network": {"head.weight": torch.ones(1), "backbone.x": weights}}, path)
    _refused(path, "'backbone.x' holds 1 non-finite value(s) (NaN or inf)")
    finite = tmp_path / "finite.pth"
    torch.save({"network": {"backbone.x": torch.full((2,), 3.4e38)}}, finite)  # float32's largest
    assert read_checkpoint(finite).tensors["backbone.x"][0] == torch.tensor(3.4e38)
