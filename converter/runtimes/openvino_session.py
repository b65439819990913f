"""OpenVINO as a runtime for our ONNX graphs (optional: ``pip install "cnp-convert[openvino]"``).

OpenVINO compiles the same ``.onnx`` file for the CPU and picks its own execution precision:
bf16 on CPUs with AMX or AVX-512 BF16 unless told otherwise, f32 elsewhere. What it chose is read
back from the compiled model (like onnxruntime's providers, a request is not a fact), and the
verdict follows it: f32 execution is held to the fp32 floor rule, bf16 to the bf16 pose budget
(converter.verdicts.tolerances).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.choices import OV_EXECUTION_PRECISIONS as EXECUTION_PRECISIONS
from ..core.errors import OnnxModelError, OptionError, first_line
from .graph_bounds import check_bounded_graph
from .sessions import check_session_request
from .watched import WatchedRunner, watched_inference

INSTALL_HINT = 'pip install "cnp-convert[openvino]" (or pip install openvino)'
# What a user may ask OpenVINO to compute in; "auto" is OpenVINO's own choice for the CPU.

_TYPE_NAMES = {
    "f32": "f32", "float32": "f32",
    "bf16": "bf16", "bfloat16": "bf16",
    "f16": "f16", "float16": "f16",
}  # fmt: skip


def check_execution_precision(value: str) -> str:
    name = value.strip().lower()
    if name not in EXECUTION_PRECISIONS:
        raise OptionError(
            "ov_precision", f"must be one of {', '.join(EXECUTION_PRECISIONS)}, not {value!r}"
        )
    return name


def _precision_name(ov_type: object) -> str:
    """f32 / bf16 / f16 from an OpenVINO element type (its str() is "<Type: 'bfloat16'>")."""
    text = str(getattr(ov_type, "type_name", None) or ov_type).lower()
    for key, name in _TYPE_NAMES.items():
        if f"'{key}'" in text or text == key:
            return name
    return text


def require_openvino() -> None:
    """Fail fast (before any weights are loaded) when the OpenVINO runtime cannot work here."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        raise OptionError(
            "runtime", f"openvino: OpenVINO is not installed; {INSTALL_HINT}"
        ) from None


class OpenVinoSession:
    """An OpenVINO CPU inference request over a graph: a runtimes.sessions.Session.

    execution_precision: what the compiled model really computes in (f32, bf16, f16).
    """

    device = "cpu"
    fallback_reason = None

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        precision: str = "auto",
        *,
        time_limit_s: float | None = None,
    ):
        precision = check_execution_precision(precision)
        self.path, self.time_limit_s = check_session_request(path, threads, time_limit_s)
        require_openvino()
        import openvino as ov

        self._bounds = check_bounded_graph(self.path)
        core = ov.Core()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(self.path))
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long texts
            first = first_line(exc)
            raise OnnxModelError(
                f"{self.path}: OpenVINO cannot compile it ({first[:300]})"
            ) from None
        self.execution_precision = _precision_name(
            compiled.get_property("INFERENCE_PRECISION_HINT")
        )
        self.providers = (
            f"OpenVINO {ov.get_version().split('-')[0]} CPU ({self.execution_precision}, "
            f"{'asked ' + precision if precision != 'auto' else 'its default'})",
        )
        if len(compiled.inputs) != 1:
            raise OnnxModelError(
                f"{self.path}: expected one input, the graph has {len(compiled.inputs)}"
            )
        self.input_name = compiled.inputs[0].get_any_name()
        shape = compiled.inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        self._outputs = list(compiled.outputs)
        self.output_names = tuple(o.get_any_name() for o in self._outputs)
        self._compiled = compiled  # held for the request's lifetime
        self._request = compiled.create_infer_request()
        self._runner = WatchedRunner("cnp-openvino-run")

    def _infer(self, feed: np.ndarray):
        # Asynchronous start and a wait: cancel() ends an asynchronous request, not infer().
        self._request.start_async({0: feed})
        self._request.wait()
        return self._request.results

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """One forward pass; image is the normalized NCHW float32 batch."""
        feed = np.ascontiguousarray(image, dtype=np.float32)
        values = watched_inference(
            self._runner, self._infer, feed, path=self.path, runtime="OpenVINO",
            operations=self._bounds.cost(feed.shape).operations,
            time_limit_s=self.time_limit_s, stop=self._request.cancel,
        )  # fmt: skip
        # The request reuses its output buffers on the next call: copy out.
        return {
            name: np.array(values[out])
            for name, out in zip(self.output_names, self._outputs, strict=True)
        }
