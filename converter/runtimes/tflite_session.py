"""TFLite as a runtime for our ONNX graphs: onnx2tf converts, LiteRT runs (optional:
``pip install "cnp-convert[tflite]"``).

Phones take these graphs as .tflite files, and onnx2tf is the converter users reach for. Some of
its releases convert some graphs wrong without an error (docs/compatibility.md), so the file is
judged on LiteRT by the same verdict as the graph, and only a passing file is ever written.

The conversion runs in a child process: TensorFlow's import is slow and prints to the terminal,
and its threads and memory stay out of this process. The child is bounded in time, works in a
private folder that is removed afterwards, and the file it makes keeps the graph's NCHW input, so
the verdict feeds it the very images it feeds the graph.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ..core.errors import OnnxModelError, OptionError, first_line
from .graph_bounds import check_bounded_graph
from .sessions import check_session_request
from .watched import (
    RunTimeLimitError,
    WatchedRunner,
    check_time_limit,
    no_cancel,
    watched_inference,
)

INSTALL_HINT = 'pip install "cnp-convert[tflite]"'
# The modules onnx2tf imports without declaring them (its 1.28 releases declare nothing), and
# LiteRT's interpreter.
_REQUIRED_MODULES = (
    ("onnx2tf", "onnx2tf"),
    ("tensorflow", "tensorflow"),
    ("tf_keras", "tf_keras"),
    ("onnx_graphsurgeon", "onnx_graphsurgeon"),
    ("sng4onnx", "sng4onnx"),
    ("ai_edge_litert", "ai-edge-litert"),
)
# Conversion times are in docs/compatibility.md; the limit leaves a loaded machine wide room.
CONVERT_LIMIT_S = 1200.0
# A flatbuffer holds at most 2 GiB; the L graph's float32 file is a small fraction of that.
MAX_TFLITE_BYTES = 2**31
_ERROR_TAIL_BYTES = 64 * 1024  # of the child's output, read back for the one-line error
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# The child: onnx2tf builds the Keras model and TensorFlow's converter writes its float32 file,
# nothing else. onnx2tf's own saving (a SavedModel, then float32 and float16 files, each lowered
# through a SavedModel again) is most of its time and makes files the verdict never reads; the
# float32 file made here takes the converter's frozen-graph path with onnx2tf's op sets, and is
# byte for byte the file onnx2tf writes (docs/compatibility.md).
# argv: the graph, the output folder, the input's name.
_CONVERT_SCRIPT = """
import pathlib
import sys
import onnx2tf
import tensorflow as tf
model = onnx2tf.convert(
    input_onnx_file_path=sys.argv[1],
    output_folder_path=sys.argv[2],
    keep_shape_absolutely_input_names=[sys.argv[3]],
    non_verbose=True,
    disable_model_save=True,
)
if model is None:
    sys.exit("onnx2tf made no model")
signature = [tf.TensorSpec(t.shape, t.dtype, t.name) for t in model.inputs]
run = tf.function(lambda *inputs: model(inputs), input_signature=signature)
converter = tf.lite.TFLiteConverter.from_concrete_functions([run.get_concrete_function()])
converter.experimental_lower_to_saved_model = False
converter.target_spec.supported_ops = [
    tf.lite.OpsSet.TFLITE_BUILTINS,
    tf.lite.OpsSet.SELECT_TF_OPS,
]
folder = pathlib.Path(sys.argv[2])
folder.mkdir(parents=True, exist_ok=True)
(folder / "model_float32.tflite").write_bytes(converter.convert())
"""


def require_tflite(option: str = "runtime") -> None:
    """Fail fast (before any weights are loaded) when onnx2tf or LiteRT is missing; option is
    the options field that asked for TFLite (runtime, target)."""
    missing = [
        dist for module, dist in _REQUIRED_MODULES if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise OptionError(option, f"tflite: {', '.join(missing)} not installed; {INSTALL_HINT}")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def converter_versions() -> str:
    """onnx2tf's and TensorFlow's versions, read from the installed packages."""
    return f"onnx2tf {_version('onnx2tf')} (TensorFlow {_version('tensorflow')})"


def _last_words(log: Path) -> str:
    """The child's last meaningful line (its error), in one line without colour codes."""
    with open(log, "rb") as handle:
        handle.seek(max(0, log.stat().st_size - _ERROR_TAIL_BYTES))
        text = _ANSI.sub("", handle.read().decode("utf-8", "replace"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


@dataclass(frozen=True)
class TfliteModel:
    """A .tflite file onnx2tf made from a graph, held in memory (its folder is gone)."""

    content: bytes
    converter: str  # what made it, versions read from the installed packages
    width: str = "float32"  # onnx2tf's name for the file's weights


def convert_to_tflite(
    onnx_path: str | Path, input_name: str, time_limit_s: float | None = None
) -> TfliteModel:
    """The float32 .tflite onnx2tf makes from the graph at onnx_path, in a child process
    bounded by time_limit_s (None: CONVERT_LIMIT_S). OnnxModelError in one line when onnx2tf
    fails, or makes no file or a file too large."""
    path = Path(onnx_path)
    limit = check_time_limit(time_limit_s) or CONVERT_LIMIT_S
    require_tflite()
    converter = converter_versions()
    # No GPU for a conversion; TensorFlow's C++ logging off (errors still reach the log).
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory(prefix="cnp-onnx2tf-") as work:
        folder, log = Path(work) / "out", Path(work) / "log.txt"
        with open(log, "wb") as sink:
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _CONVERT_SCRIPT, str(path.resolve()), str(folder),
                     input_name],
                    cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                    stderr=subprocess.STDOUT, timeout=limit, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise RunTimeLimitError(
                    f"{path}: {converter} ran past its time limit of {limit:g} s and was stopped"
                ) from None
        if done.returncode != 0:
            raise OnnxModelError(f"{path}: {converter} cannot convert it ({_last_words(log)})")
        made = sorted(folder.glob("*_float32.tflite"))
        if len(made) != 1:
            raise OnnxModelError(f"{path}: {converter} wrote no float32 .tflite file")
        size = made[0].stat().st_size
        if size > MAX_TFLITE_BYTES:
            raise OnnxModelError(
                f"{path}: {converter} wrote a {size} byte .tflite file, over the format's "
                f"{MAX_TFLITE_BYTES} bytes"
            )
        return TfliteModel(made[0].read_bytes(), converter)


def _fits(shape: tuple[int, ...], declared: tuple[int | None, ...] | None) -> bool:
    if declared is None:  # declared without a shape: the verdict compares it with PyTorch's
        return True
    return len(shape) == len(declared) and all(
        d is None or d == n for n, d in zip(shape, declared, strict=True)
    )


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ prints an INFO line to the process's stderr when it first sets up its CPU
    delegate; the session's providers say what runs instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TfliteSession:
    """A LiteRT interpreter over the .tflite onnx2tf made from a graph, on the CPU: a
    runtimes.sessions.Session whose names and costs are the graph's. model: the file, which the
    exporter writes once the verdict passed."""

    device = "cpu"
    fallback_reason = None
    execution_precision = None  # a float32 file computes in float32, judged as the graph is

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        *,
        time_limit_s: float | None = None,
        convert_limit_s: float | None = None,
    ) -> None:
        self.path, self.time_limit_s = check_session_request(path, threads, time_limit_s)
        self._bounds = check_bounded_graph(self.path)
        self.input_name, self.input_shape = self._bounds.declared_input()
        self.output_names = self._bounds.output_names()
        self._declared = self._bounds.declared_outputs()
        self.model = convert_to_tflite(self.path, self.input_name, convert_limit_s)
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_content=self.model.content, num_threads=threads)
            with _native_stderr_silenced():
                self._interpreter.allocate_tensors()  # sets up the CPU delegate, once
        except Exception as exc:  # ValueError / RuntimeError with LiteRT's text
            raise OnnxModelError(
                f"{self.path}: LiteRT cannot load the .tflite {self.model.converter} made "
                f"({first_line(exc)[:300]})"
            ) from None
        inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(self._outputs) != len(self.output_names):
            raise OnnxModelError(
                f"{self.path}: the .tflite {self.model.converter} made has {len(inputs)} inputs "
                f"and {len(self._outputs)} outputs; the graph has 1 and {len(self.output_names)}"
            )
        self._input = inputs[0]
        self._fed_shape: tuple[int, ...] | None = None
        self.providers = (
            f"LiteRT {_version('ai-edge-litert')} CPU (XNNPACK), {self.model.width} .tflite by "
            f"{self.model.converter}",
        )
        self._runner = WatchedRunner("cnp-litert-run")

    def _forward(self, feed: np.ndarray) -> list[np.ndarray]:
        interpreter = self._interpreter
        if feed.shape != self._fed_shape:
            interpreter.resize_tensor_input(self._input["index"], list(feed.shape), strict=False)
            interpreter.allocate_tensors()
            self._fed_shape = feed.shape
        interpreter.set_tensor(self._input["index"], feed)
        interpreter.invoke()
        # copies: the interpreter reuses its buffers on the next run
        return [np.array(interpreter.get_tensor(o["index"])) for o in self._outputs]

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """One forward pass; image is the normalized NCHW float32 batch."""
        feed = np.ascontiguousarray(image, dtype=np.float32)
        values = watched_inference(
            self._runner, self._forward, feed, path=self.path, runtime="LiteRT",
            operations=self._bounds.cost(feed.shape).operations,
            time_limit_s=self.time_limit_s, stop=no_cancel,
        )  # fmt: skip
        # onnx2tf keeps the outputs in the graph's order: each must have its output's shape
        for name, value in zip(self.output_names, values, strict=True):
            declared = self._declared[name]
            if value.shape[:1] != feed.shape[:1] or not _fits(value.shape, declared):
                shown = ["?" if d is None else d for d in declared or ()]
                raise OnnxModelError(
                    f"{self.path}: LiteRT gives {name} as {list(value.shape)} at batch "
                    f"{feed.shape[0]}, the graph declares {shown}"
                )
        return dict(zip(self.output_names, values, strict=True))
