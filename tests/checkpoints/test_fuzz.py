"""Property-based fuzzing of every reader of untrusted files (Hypothesis): checkpoints, images,
boxes files, Human3.6M annotations and ONNX graphs.

Inputs are real fixtures (a release zip, a canonical safetensors file, an unzipped folder, a
photo in each image format, a boxes file, the synthetic set's annotations, an exported graph) with
their bytes or structure mutated. Each example is read in a forked child under a memory cap
(RLIMIT_AS) and a time cap (alarm), forked from a lean process of its own (reader_server.py): it
must end in success or in a CheckpointError (exit 2 at the command line), never another
exception, never past the caps. CI runs a fixed small budget;
`just fuzz` runs a long one (CNP_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import reader_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reader_server import CRASHED, OK, REFUSED

from converter.checkpoints.canonical import canonicalize
from converter.checkpoints.fabricate import unzip_release
from converter.checkpoints.reader import read_checkpoint
from converter.checkpoints.writer import write_canonical

EXAMPLES = int(os.environ.get("CNP_FUZZ_EXAMPLES", "25"))
ROOT = Path(__file__).resolve().parents[2]


class Reader:
    """reader_server.py in its own process, one per module: reader(read, path) -> (outcome,
    detail) of reader_server's function read on path, the outcome one of its OK, REFUSED,
    CRASHED, KILLED."""

    def __init__(self, log: Path) -> None:
        self._log = log
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        with log.open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, reader_server.__file__],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                cwd=ROOT, env=env,
            )  # fmt: skip

    def __call__(self, read: Callable[[Path], None], path: Path) -> tuple[int, str]:
        assert self._process.stdin and self._process.stdout
        try:
            self._process.stdin.write(json.dumps({"read": read.__name__, "path": str(path)}))
            self._process.stdin.write("\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            raise AssertionError(f"the reader process ended: {self._log.read_text()[-4000:]}")
        decoded = json.loads(answer)
        return decoded["outcome"], decoded["detail"]

    def close(self) -> None:
        assert self._process.stdin and self._process.stdout
        self._process.stdin.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Iterator[Reader]:
    server = Reader(tmp_path_factory.mktemp("fuzz_reader") / "stderr.log")
    yield server
    server.close()


@pytest.fixture(scope="module")
def seeds(release_file, tmp_path_factory) -> dict[str, bytes | Path]:
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
def test_mutated_bytes_are_read_or_refused(reader, seeds, kind, edits, cut) -> None:
    # Most checkpoints are tensor bytes; _mutated edits the structured head and tail more often.
    data = _mutated(seeds[kind].read_bytes(), edits, cut)
    # One example's files at a time: a long run would otherwise keep thousands of copies.
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / f"case.{'pth' if kind == 'zip' else 'safetensors'}"
        path.write_bytes(bytes(data))
        _assert_contained(*reader(reader_server.checkpoint, path))


@FUZZ
@given(
    action=st.sampled_from(["drop", "truncate", "swap", "rename", "extra", "pickle"]),
    pick=st.integers(0, 10_000),
    payload=st.binary(max_size=64),
)
def test_mutated_folders_are_read_or_refused(reader, seeds, action, pick, payload) -> None:
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        folder = Path(tmp) / "snapshot"
        # Linked, not copied (tens of MB per example): _mutate_folder replaces a file it
        # changes, so the seed's own files are never written.
        shutil.copytree(seeds["folder"], folder, copy_function=os.link)
        _mutate_folder(folder, action, pick, payload)
        _assert_contained(*reader(reader_server.checkpoint, folder))


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


@FUZZ
@given(suffix=st.sampled_from([".png", ".jpg", ".bmp", ".webp"]), edits=EDITS, cut=CUTS)
def test_mutated_images_are_read_or_refused(reader, image_seeds, suffix, edits, cut) -> None:
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / f"case{suffix}"
        path.write_bytes(_mutated(image_seeds[suffix], edits, cut))
        _assert_contained(*reader(reader_server.image, path))


BOXES = '{"a.jpg": [[10, 20, 100, 200], {"box": [1.5, 2, 30, 40], "root_depth_mm": 5000}]}'


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 200), st.sampled_from('[]{}",:0-9.eE-+ atrue')),
                      min_size=1, max_size=6), cut=CUTS)  # fmt: skip
def test_mutated_boxes_files_are_read_or_refused(reader, edits, cut) -> None:
    text = list(BOXES)
    for where, char in edits:
        text[where % len(text)] = char
    data = "".join(text).encode()
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / "boxes.json"
        path.write_bytes(data[: int(cut * len(data))] if cut is not None else data)
        _assert_contained(*reader(reader_server.boxes_file, path))


@pytest.fixture(scope="module")
def dataset_seed(tmp_path_factory, synthetic_set) -> Path:
    """The synthetic set's annotation files and RootNet boxes (images: the image family)."""
    full = synthetic_set("reference")
    seed = tmp_path_factory.mktemp("fuzz_h36m_seed")
    for folder in ("annotations", "bbox_root"):
        shutil.copytree(full / folder, seed / folder)
    (seed / "images").mkdir()  # the layout is read from the folders; the frames are not read
    return seed


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
def test_mutated_annotations_are_read_or_refused(reader, dataset_seed, pick, edits, cut) -> None:
    # One file of the set (annotation data, cameras, 3D joints or RootNet boxes) edited.
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        root = Path(tmp) / "h36m"
        shutil.copytree(dataset_seed, root)
        files = sorted(p for p in root.rglob("*.json"))
        target = files[pick % len(files)]
        data = _edited_json(target.read_text(), edits).encode()
        target.write_bytes(data[: int(cut * len(data))] if cut is not None else data)
        _assert_contained(*reader(reader_server.dataset, root))


@pytest.fixture(scope="module")
def graph_seed(onnx_cache) -> bytes:
    return onnx_cache.exported(onnx_cache.seeded_checkpoint("XS", 0))[0].read_bytes()


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_mutated_graphs_are_run_or_refused(reader, graph_seed, edits, cut) -> None:
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / "case.onnx"
        path.write_bytes(_mutated(graph_seed, edits, cut))
        _assert_contained(*reader(reader_server.graph, path))


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
def test_structurally_edited_graphs_are_run_or_refused(reader, graph_seed, edits) -> None:
    """Shapes, axes, operators and wiring changed: the cost read from the shapes must refuse
    what would not fit (memory, time) before a runtime runs it, in one line."""
    with tempfile.TemporaryDirectory(prefix="cnp-fuzz-") as tmp:
        path = Path(tmp) / "case.onnx"
        path.write_bytes(_edited_graph(graph_seed, edits))
        _assert_contained(*reader(reader_server.graph, path))


def test_the_harness_sees_a_crash(reader, tmp_path: Path) -> None:
    outcome, detail = reader(reader_server.crash, tmp_path / "any")
    assert outcome == CRASHED and "KeyError" in detail


def test_the_harness_enforces_the_memory_cap(reader, tmp_path: Path) -> None:
    outcome, detail = reader(reader_server.hungry, tmp_path / "any")
    assert outcome == CRASHED and "MemoryError" in detail


@pytest.mark.parametrize(
    ("read", "name"),
    [
        (reader_server.checkpoint, "case.pth"),
        (reader_server.image, "case.png"),
        (reader_server.boxes_file, "boxes.json"),
        (reader_server.dataset, "h36m"),
        (reader_server.graph, "case.onnx"),
    ],
)
def test_each_read_reaches_its_reader(reader, tmp_path: Path, read, name: str) -> None:
    """A file no reader accepts is refused in one line naming it: the read is the tool's own."""
    path = tmp_path / name
    if name == "h36m":
        path.mkdir()  # a folder with no annotations
    else:
        path.write_bytes(b"not a " + name.encode() + b" file")
    outcome, detail = reader(read, path)
    assert outcome == REFUSED and str(path) in detail and "\n" not in detail, detail


def test_zip_fixture_is_what_the_fuzzer_mutates(seeds) -> None:
    assert seeds["zip"].read_bytes()[:4] == b"PK\x03\x04" and zipfile.is_zipfile(seeds["zip"])
