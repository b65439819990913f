"""The tool's onnx2tf conversion against onnx2tf's own: the same file, in less time.

    python benchmarks/tflite_conversion.py [--variants XS,S,M,L] [--opsets 11,18]

For each variant (XS: the authors' released weights; S, M, L: seeded random weights) the graph is
built as `cnp-convert onnx --opset N` builds it (no verdict), then converted twice, each in a child
process: once by the tool (converter.runtimes.tflite_session.convert_to_tflite: onnx2tf
builds the Keras model, TensorFlow's converter writes the float32 file) and once by a plain
`onnx2tf.convert(...)` call with the same input option, which writes a SavedModel and its float32
and float16 files. Each line gives both wall times and whether the two float32 files are the
same bytes (sha256). Needs the `[tflite]` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx
import torch

from cnp_convert.checkpoints.canonical import random_checkpoint
from cnp_convert.checkpoints.released import load_released
from cnp_convert.core.variants import get_variant
from cnp_convert.export.exporter import build_graph
from cnp_convert.export.options import ExportOptions
from cnp_convert.runtimes import tflite_session

# onnx2tf's documented Python entry point with its defaults: what a user runs by hand.
ONNX2TF_DEFAULT_SCRIPT = """
import sys
import onnx2tf
onnx2tf.convert(
    input_onnx_file_path=sys.argv[1],
    output_folder_path=sys.argv[2],
    keep_shape_absolutely_input_names=[sys.argv[3]],
    non_verbose=True,
)
"""


def _tool_conversion(path: Path) -> tuple[float, bytes]:
    started = time.perf_counter()
    content = tflite_session.convert_to_tflite(path, "image").content
    return time.perf_counter() - started, content


def _onnx2tf_conversion(path: Path, folder: Path) -> tuple[float, bytes]:
    """onnx2tf's own convert in a child, as a user runs it (TensorFlow kept out of this process)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", ONNX2TF_DEFAULT_SCRIPT, str(path), str(folder), "image"],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=1200,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    (made,) = folder.glob("*_float32.tflite")
    return seconds, made.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="XS,S,M,L")
    parser.add_argument("--opsets", default="11,18")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {tflite_session.converter_versions()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            ckpt = load_released() if name == "XS" else random_checkpoint(get_variant(name), 0)
            for opset in (int(o) for o in args.opsets.split(",")):
                path = Path(tmp) / f"{name}_{opset}.onnx"
                onnx.save(build_graph(ckpt, ExportOptions(opset=opset)).proto, str(path))
                tool_s, tool = _tool_conversion(path)
                plain_s, plain = _onnx2tf_conversion(path, Path(tmp) / f"onnx2tf_{name}_{opset}")
                row = {
                    "variant": name,
                    "opset": opset,
                    "tool_s": round(tool_s, 1),
                    "onnx2tf_s": round(plain_s, 1),
                    "bytes": len(tool),
                    "sha256": hashlib.sha256(tool).hexdigest()[:16],
                    "same_file": tool == plain,
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
