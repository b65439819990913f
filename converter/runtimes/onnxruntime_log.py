"""onnxruntime's process-wide logger, set by the command line before each command runs.

Apart from sessions (which imports onnx, PyTorch and the graph checks): a command that never
opens a graph (variants, inspect, demo-data) does not import them for this."""

from __future__ import annotations

import onnxruntime as ort


def quiet_onnxruntime(verbose: bool = False) -> None:
    """onnxruntime's own process-wide logger: fatal only (our messages say what failed and why),
    or warnings with verbose. SessionOptions.log_severity_level does not reach provider loading."""
    ort.set_default_logger_severity(2 if verbose else 4)
