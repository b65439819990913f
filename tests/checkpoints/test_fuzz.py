"""Property-based fuzzing of every reader of untrusted files (Hypothesis): checkpoints, images,
boxes files, Human3.6M annotations and ONNX graphs.

Inputs are real fixtures (a release zip, a canonical safetensors file, an unzipped folder, a
photo in each image format, a boxes file, the synthetic set's annotations, an exported graph) with
their bytes or structure mutated. Each example is read in a forked child under a memory cap
(RLIMIT_AS) and a time cap (alarm): it must end in success or in a CheckpointError (exit 2 at the
command line), never another exception, never past the caps. CI runs a fixed small budget;
`just fuzz` runs a long one (CNP_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import tempfile
import traceback
import warnings
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
# Bytes of address space an example may add to what its worker already maps (torch maps ~1.5 GB;
# a worker that ran the OpenVINO or LiteRT tests maps more): a fixed cap would fail on those.
MEMORY_HEADROOM = 1536 * 1024**2
TIME_CAP = 20  # seconds per example

OK, REFUSED, CRASHED, KILLED = 0, 2, 3, -1


def _read_checkpoint(path: Path) -> None:
    canonicalize(read_checkpoint(path))


def _mapped_bytes() -> int:
    """This process's address space now (VmSize in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def _read_in_child(path: Path, read=_read_checkpoint) -> tuple[int, str]:
    """(outcome, detail): read(path) run in a forked child with memory and time caps."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        code, detail = OK, ""
        try:
            cap = _mapped_bytes() + MEMORY_HEADROOM
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            signal.alarm(TIME_CAP)
            # numpy's overflow and invalid-value warnings would reach the user's terminal
            warnings.simplefilter("error", RuntimeWarning)
            read(path)
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


def _mutated(data: bytes, edits, cut) -> bytes:
    """Bytes with a few values replaced, more often near the structured head and tail, and
    maybe cut short."""
    out = bytearray(data)
    for where, value in edits:
        region = where**3 if where < 0.5 else 1 - (1 - where) ** 3
        out[min(int(region * len(out)), len(out) - 1)] = value
    return bytes(out[: int(cut * len(out))] if cut is not None else out)


EDITS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8)
CUTS = st.one_of(st.none(), st.floats(0, 1))


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 50,  # the CI budget is the same examples every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(kind=st.sampled_from(["zip", "safetensors"]), edits=EDITS, cut=CUTS)
def test_mutated_bytes_are_read_or_refused(seeds, kind, edits, cut) -> None:
    # Most checkpoints are tensor bytes; _mutated edits the structured head and tail more often.
    data = _mutated(seeds[kind].read_bytes(), edits, cut)
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
        # Linked, not copied (tens of MB per example): _mutate_folder replaces a file it
        # changes, so the seed's own files are never written.
        shutil.copytree(seeds["folder"], folder, copy_function=os.link)
        _mutate_folder(folder, action, pick, payload)
        _assert_contained(*_read_in_child(folder))


def _mutate_folder(folder: Path, action: str, pick: int, payload: bytes) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    target = files[pick % len(files)]
    if action == "drop":
        target.unlink()
    elif action == "truncate":
        _replace(target, target.read_bytes()[: pick % (target.stat().st_size + 1)])
    elif action == "swap":
        other = files[(pick // 7) % len(files)]
        a, b = target.read_bytes(), other.read_bytes()
        _replace(target, b)
        _replace(other, a)
    elif action == "rename":
        target.rename(target.with_name(target.name + "x"))
    elif action == "extra":
        (target.parent / f"extra{pick}").write_bytes(payload)
    else:  # pickle: overwrite part of data.pkl
        pkl = folder / "data.pkl"
        raw = bytearray(pkl.read_bytes())
        start = pick % max(1, len(raw))
        raw[start : start + len(payload)] = payload
        _replace(pkl, bytes(raw))


def _replace(path: Path, data: bytes) -> None:
    """A new file at path: the old one may be a link to the seed's."""
    path.unlink()
    path.write_bytes(data)


@pytest.fixture(scope="module")
def image_seeds() -> dict[str, bytes]:
    import cv2

    from converter.h36m.photos import photo_paths

    photo = cv2.imread(str(photo_paths()[1]))
    params = {".webp": [cv2.IMWRITE_WEBP_QUALITY, 80], ".jpg": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]}
    return {
        suffix: cv2.imencode(suffix, photo, params.get(suffix, []))[1].tobytes()
        for suffix in (".png", ".jpg", ".bmp", ".webp")
    }


def _read_image(path: Path) -> None:
    from converter.h36m.image_files import read_bgr

    read_bgr(path)


@FUZZ
@given(suffix=st.sampled_from([".png", ".jpg", ".bmp", ".webp"]), edits=EDITS, cut=CUTS)
def test_mutated_images_are_read_or_refused(image_seeds, suffix, edits, cut) -> None:
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / f"case{suffix}"
        path.write_bytes(_mutated(image_seeds[suffix], edits, cut))
        _assert_contained(*_read_in_child(path, _read_image))


BOXES = '{"a.jpg": [[10, 20, 100, 200], {"box": [1.5, 2, 30, 40], "root_depth_mm": 5000}]}'


def _read_boxes(path: Path) -> None:
    from converter.prediction.run import read_boxes_file

    read_boxes_file(path)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 200), st.sampled_from('[]{}",:0-9.eE-+ atrue')),
                      min_size=1, max_size=6), cut=CUTS)  # fmt: skip
def test_mutated_boxes_files_are_read_or_refused(edits, cut) -> None:
    text = list(BOXES)
    for where, char in edits:
        text[where % len(text)] = char
    data = "".join(text).encode()
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / "boxes.json"
        path.write_bytes(data[: int(cut * len(data))] if cut is not None else data)
        _assert_contained(*_read_in_child(path, _read_boxes))


@pytest.fixture(scope="module")
def dataset_seed(tmp_path_factory, synthetic_set) -> Path:
    """The synthetic set's annotation files and RootNet boxes (images: the image family)."""
    full = synthetic_set("reference")
    seed = tmp_path_factory.mktemp("fuzz_h36m_seed")
    for folder in ("annotations", "bbox_root"):
        shutil.copytree(full / folder, seed / folder)
    (seed / "images").mkdir()  # the layout is read from the folders; the frames are not read
    return seed


def _read_dataset(root: Path) -> None:
    from converter.h36m.dataset import load_dataset

    bbox_root = root / "bbox_root" / "bbox_root_human36m_output.json"
    for protocol in (1, 2):
        load_dataset(root, protocol, bbox_root=bbox_root, require_images=False)


JSON_CHARS = st.sampled_from('[]{}",:0-9.eE-+ atrue/\\n')
# Values put in place of one number: most cases still parse and reach the value checks.
JSON_VALUES = st.sampled_from(["0", "-1", "1.5", "1e200", "1e308", "-1e308", "1e400", "NaN",
                               "Infinity", "99999999999999999999", '"x"', "null", "[]", "{}",
                               "true"])  # fmt: skip
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _edited_json(text: str, edits) -> str:
    for edit in edits:
        if edit[0] == "char":
            _, where, char = edit
            at = min(int(where * len(text)), len(text) - 1)
            text = text[:at] + char + text[at + 1 :]
        else:
            _, which, value = edit
            numbers = list(NUMBER.finditer(text))
            if numbers:
                match = numbers[which % len(numbers)]
                text = text[: match.start()] + value + text[match.end() :]
    return text


JSON_EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("char"), st.floats(0, 1), JSON_CHARS),
        st.tuples(st.just("number"), st.integers(0, 10**6), JSON_VALUES),
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(pick=st.integers(0, 10_000), edits=JSON_EDITS, cut=CUTS)
def test_mutated_annotations_are_read_or_refused(dataset_seed, pick, edits, cut) -> None:
    # One file of the set (annotation data, cameras, 3D joints or RootNet boxes) edited.
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        root = Path(tmp) / "h36m"
        shutil.copytree(dataset_seed, root)
        files = sorted(p for p in root.rglob("*.json"))
        target = files[pick % len(files)]
        data = _edited_json(target.read_text(), edits).encode()
        target.write_bytes(data[: int(cut * len(data))] if cut is not None else data)
        _assert_contained(*_read_in_child(root, _read_dataset))


@pytest.fixture(scope="module")
def graph_seed(onnx_cache) -> bytes:
    return onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 0))[0].read_bytes()


def _run_graph(path: Path) -> None:
    import numpy as np

    from converter.prediction.predictor import PosePredictor

    PosePredictor(path, device="cpu").predict(np.zeros((64, 48, 3), np.uint8))


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_mutated_graphs_are_run_or_refused(graph_seed, edits, cut) -> None:
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / "case.onnx"
        path.write_bytes(_mutated(graph_seed, edits, cut))
        _assert_contained(*_read_in_child(path, _run_graph))


_SIZES = st.sampled_from([-(2**62), -2, -1, 0, 1, 2, 3, 7, 64, 1000, 2**20, 2**31, 2**40, 2**62])
_OPS = st.sampled_from(["Add", "MatMul", "Conv", "Expand", "Tile", "Resize", "Reshape",
                        "ConstantOfShape", "Softmax", "ReduceSum", "Gather", "Pad", "Range",
                        "TopK", "Det", "Unique"])  # fmt: skip
GRAPH_EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("constant"), st.integers(0, 10**6), st.lists(_SIZES, max_size=5)),
        st.tuples(st.just("attribute"), st.integers(0, 10**6), st.integers(0, 9), _SIZES),
        st.tuples(st.just("op"), st.integers(0, 10**6), _OPS),
        st.tuples(st.just("rewire"), st.integers(0, 10**6), st.integers(0, 3),
                  st.integers(0, 10**6)),
    ),
    min_size=1, max_size=4,
)  # fmt: skip


def _edited_graph(data: bytes, edits) -> bytes:
    """The graph with a few structural edits: an integer Constant's values (shapes, axes,
    scales), an integer attribute, a node's operator, or one of its inputs rewired to another
    tensor. Each index is taken modulo what the graph holds."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    nodes = model.graph.node
    names = [name for node in nodes for name in node.output] + ["image"]
    for kind, where, *rest in edits:
        node = nodes[where % len(nodes)]
        if kind == "constant":
            constants = [n for n in nodes if n.op_type == "Constant" and n.attribute and
                         n.attribute[0].t.data_type == onnx.TensorProto.INT64]  # fmt: skip
            if constants:
                target = constants[where % len(constants)]
                values = rest[0] or [1]
                tensor = numpy_helper.from_array(np.array(values, np.int64), target.output[0])
                target.attribute[0].t.CopyFrom(tensor)
        elif kind == "attribute":
            if node.attribute:
                attribute = node.attribute[rest[0] % len(node.attribute)]
                if attribute.type == onnx.AttributeProto.INT:
                    attribute.i = rest[1]
                elif attribute.type == onnx.AttributeProto.INTS and attribute.ints:
                    attribute.ints[rest[0] % len(attribute.ints)] = rest[1]
        elif kind == "op":
            node.op_type = rest[0]
        elif node.input:
            node.input[rest[0] % len(node.input)] = names[rest[1] % len(names)]
    return model.SerializeToString()


@FUZZ
@given(edits=GRAPH_EDITS)
def test_structurally_edited_graphs_are_run_or_refused(graph_seed, edits) -> None:
    """Shapes, axes, operators and wiring changed: the cost read from the shapes must refuse
    what would not fit (memory, time) before a runtime runs it, in one line."""
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / "case.onnx"
        path.write_bytes(_edited_graph(graph_seed, edits))
        _assert_contained(*_read_in_child(path, _run_graph))


def test_the_harness_sees_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path):
        raise KeyError("not a ConverterError")

    monkeypatch.setattr(f"{__name__}.read_checkpoint", broken)
    outcome, detail = _read_in_child(tmp_path / "any")
    assert outcome == CRASHED and "KeyError" in detail


def test_the_harness_enforces_the_memory_cap(tmp_path: Path, monkeypatch) -> None:
    def hungry(path):
        return bytearray(MEMORY_HEADROOM * 2)

    monkeypatch.setattr(f"{__name__}.read_checkpoint", hungry)
    outcome, detail = _read_in_child(tmp_path / "any")
    assert outcome == CRASHED and "MemoryError" in detail


def test_zip_fixture_is_what_the_fuzzer_mutates(seeds) -> None:
    assert seeds["zip"].read_bytes()[:4] == b"PK\x03\x04" and zipfile.is_zipfile(seeds["zip"])
