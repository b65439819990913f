"""OpenCV's DNN module as a runtime for our ONNX graphs (opencv-python-headless, a dependency).

Users load these graphs with ``cv2.dnn.readNetFromONNX`` where onnxruntime is not at hand
(OpenCV builds for phones and boards). Its CPU backend computes in float32 whatever the graph's
types, so the verdict judges the graph's own precision. Some OpenCV releases compute some of
these graphs wrong without an error (docs/compatibility.md): the verdict, not the version, is
what decides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import OnnxModelError, OptionError, first_line
from .graph_bounds import check_bounded_graph
from .sessions import check_session_request
from .watched import WatchedRunner, no_cancel, watched_inference


def _has_dnn(cv2) -> bool:
    # Some builds (opencv-python-headless from a distribution, custom builds) leave DNN out.
    return hasattr(cv2, "dnn") and hasattr(cv2.dnn, "readNetFromONNX")


def require_opencv_dnn() -> None:
    """Fail fast (before any weights are loaded) when this OpenCV has no DNN module."""
    try:
        import cv2
    except ImportError:
        raise OptionError(
            "runtime", "opencv: OpenCV is not installed; pip install opencv-python-headless"
        ) from None
    if not _has_dnn(cv2):
        raise OptionError("runtime", f"opencv: OpenCV {cv2.__version__} has no DNN module")


class OpenCvSession:
    """An OpenCV DNN network over a graph, on its own CPU backend: a runtimes.sessions.Session."""

    device = "cpu"
    fallback_reason = None
    execution_precision = None  # the graph's own types, judged as such

    def __init__(
        self, path: str | Path, threads: int | None = None, *, time_limit_s: float | None = None
    ) -> None:
        self.path, self.time_limit_s = check_session_request(path, threads, time_limit_s)
        require_opencv_dnn()
        import cv2

        self._bounds = check_bounded_graph(self.path)
        self.input_name, self.input_shape = self._bounds.declared_input()
        self.output_names = self._bounds.output_names()
        if threads is not None:
            cv2.setNumThreads(threads)  # process-wide: OpenCV has no per-network setting
        try:
            if hasattr(cv2.dnn, "ENGINE_OPENCV"):
                # OpenCV 5: its own engine asked for by name (ENGINE_AUTO may mean an
                # onnxruntime wrapper in some builds); it runs on the CPU only.
                net = cv2.dnn.readNetFromONNX(str(self.path), cv2.dnn.ENGINE_OPENCV)
                engine = "its ONNX engine"
            else:  # OpenCV 4: the backend and target asked for, not left to the build
                net = cv2.dnn.readNetFromONNX(str(self.path))
                net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
                net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
                engine = "its OpenCV backend"
        except cv2.error as exc:
            raise OnnxModelError(
                f"{self.path}: OpenCV cannot read it ({first_line(exc)[:300]})"
            ) from None
        self._net = net
        self.providers = (f"OpenCV {cv2.__version__} DNN, {engine}, CPU, float32",)
        self._runner = WatchedRunner("cnp-opencv-run")

    def _forward(self, feed: np.ndarray) -> list[np.ndarray]:
        self._net.setInput(feed)
        return list(self._net.forward(list(self.output_names)))

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """One forward pass; image is the normalized NCHW float32 batch."""
        feed = np.ascontiguousarray(image, dtype=np.float32)
        values = watched_inference(
            self._runner, self._forward, feed, path=self.path, runtime="OpenCV",
            operations=self._bounds.cost(feed.shape).operations,
            time_limit_s=self.time_limit_s, stop=no_cancel,
        )  # fmt: skip
        if len(values) != len(self.output_names):
            raise OnnxModelError(
                f"{self.path}: OpenCV gave {len(values)} outputs for {len(self.output_names)}"
            )
        return {name: np.array(v) for name, v in zip(self.output_names, values, strict=True)}
