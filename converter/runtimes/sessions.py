"""Execution devices for PyTorch and onnxruntime, and the check of what really runs.

onnxruntime-gpu lists CUDAExecutionProvider even where CUDA cannot start (missing libraries, no
GPU); a session created with it then runs on CPU without an error. So the truth is read back
from ``session.get_providers()`` after creation: ``cuda`` that is not really running is an
error, ``auto`` falls back to CPU and says why. TensorRT is never requested unless asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
import torch

from ..core.choices import DEVICES, RUNTIMES
from ..core.errors import OnnxModelError, OptionError, ProviderError, UsageError
from .graph_bounds import BoundedGraph, check_bounded_graph
from .watched import (
    RunTimeLimitError,
    WatchedRunner,
    check_time_limit,
    run_time_limit,
)

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TENSORRT_EP = "TensorrtExecutionProvider"
_GPU_EPS = (CUDA_EP, TENSORRT_EP)


def check_device(device: str) -> str:
    name = device.strip().lower()
    if name not in DEVICES:
        raise OptionError("device", f"must be one of {', '.join(DEVICES)}, not {device!r}")
    return name


def resolve_torch_device(device: str) -> torch.device:
    """ "auto" -> CUDA when torch can use it, else CPU; "cuda" without CUDA -> ProviderError."""
    name = check_device(device)
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "auto":
        return torch.device("cpu")
    if torch.version.cuda is None:
        why = f"this PyTorch ({torch.__version__}) is a CPU-only build"
    else:
        why = f"PyTorch built with CUDA {torch.version.cuda} sees no GPU"
    raise ProviderError(f"CUDA asked for: {why}")


def onnxruntime_cuda_version() -> str | None:
    """The CUDA version this onnxruntime-gpu was built for ("13.0"), or None (CPU build)."""
    try:
        from onnxruntime.capi import build_and_package_info
    except ImportError:
        return None
    version = getattr(build_and_package_info, "cuda_version", None)
    return str(version) if version else None


def preload_cuda_libraries() -> str | None:
    """Let onnxruntime load CUDA/cuDNN from the nvidia-* pip packages (PyTorch brings them).

    Without this the CUDA provider finds them only when torch happens to be imported first, or
    when they are on the system's library path. Versions of onnxruntime without preload_dlls
    (before 1.21) are left alone. Returns a note when preloading failed, else None.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None or CUDA_EP not in ort.get_available_providers():
        return None
    chatter = io.StringIO()  # it prints each library it cannot find; the provider check says more
    try:
        with contextlib.redirect_stdout(chatter):
            preload(cuda=True, cudnn=True, msvc=False)
    except Exception as exc:  # missing packages raise various errors; the session will say more
        return f"onnxruntime.preload_dlls failed: {' '.join(str(exc).split())[:200]}"
    return None


def cuda_provider_unloadable() -> str | None:
    """Why onnxruntime's CUDA provider library cannot load here, or None when it loads (or is
    not a file this check knows: Windows names it differently)."""
    library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not library.exists():
        return (
            None
            if sys.platform == "win32"
            else "this onnxruntime build ships no CUDA provider library"
        )
    try:
        # Loading it ourselves surfaces the dynamic loader's message (e.g. a missing libcublas).
        ctypes.CDLL(str(library))
    except OSError as exc:
        return f"the CUDA provider library does not load: {exc}"
    return None


def cuda_failure_reason() -> str:
    """Best guess at why onnxruntime's CUDA provider did not start (for messages only)."""
    return cuda_provider_unloadable() or (
        "the CUDA provider library loads, but the session did not use it (no usable GPU?)"
    )


def check_session_request(
    path: str | Path, threads: int | None, time_limit_s: float | None
) -> tuple[Path, float | None]:
    """What every runtime's session checks before it loads anything: the graph file exists,
    threads (None: the runtime's default) is at least 1, the time limit is positive."""
    path = Path(path)
    time_limit_s = check_time_limit(time_limit_s)
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such file")
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be at least 1, not {threads}")
    return path, time_limit_s


class Session(Protocol):
    """What every graph runtime's session offers (OnnxSession, OpenVinoSession, OpenCvSession,
    TfliteSession).

    device: where it really runs ("cpu" or "cuda"); providers: what the runtime reports it runs
    with; fallback_reason: why "auto" ended on CPU (None when it did not fall back);
    execution_precision: the precision the runtime reports it computes in (f32, bf16, f16), or
    None when it runs the graph's own types; input_shape: the graph input's, with symbols or
    None for dynamic axes. run() is bounded in time and stops on Ctrl-C/SIGTERM (WatchedRunner).
    """

    path: Path
    device: str
    providers: tuple[str, ...]
    fallback_reason: str | None
    execution_precision: str | None
    input_name: str
    input_shape: tuple[int | str | None, ...]
    output_names: tuple[str, ...]
    time_limit_s: float | None  # seconds per run; None: run_time_limit's default

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]: ...


class OnnxSession:
    """An onnxruntime session plus the truth about where it runs.

    providers: what ``get_providers()`` reports after creation; device: "cuda" or "cpu", what
    really runs; fallback_reason: why "auto" ended on CPU (None when it did not fall back).
    """

    def __init__(
        self,
        path: Path,
        session: ort.InferenceSession,
        requested: tuple[str, ...],
        fallback_reason: str | None,
        bounds: BoundedGraph | None = None,
    ) -> None:
        self.path = path
        self._session = session
        self._bounds = bounds  # None: an .ort file, whose cost cannot be read
        self.requested_providers = requested
        self.providers: tuple[str, ...] = tuple(session.get_providers())
        self.device = "cuda" if any(p in _GPU_EPS for p in self.providers) else "cpu"
        self.fallback_reason = fallback_reason
        self.execution_precision: str | None = None  # the graph's own types
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise OnnxModelError(f"{path}: expected one input, the graph has {names}")
        self.input_name: str = inputs[0].name
        self.input_shape: tuple[int | str | None, ...] = tuple(inputs[0].shape)
        self.output_names: tuple[str, ...] = tuple(o.name for o in session.get_outputs())
        self.time_limit_s: float | None = None  # per run; None: run_time_limit's default
        self._runner = WatchedRunner("cnp-onnxruntime-run")

    @property
    def raw_session(self) -> ort.InferenceSession:
        """The underlying onnxruntime session (I/O binding, profiling, metadata)."""
        return self._session

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """One forward pass; image is the normalized NCHW float32 batch. Bounded in time
        (time_limit_s, else run_time_limit's default) and by Ctrl-C/SIGTERM: see WatchedRunner."""
        feed = {self.input_name: np.ascontiguousarray(image, dtype=np.float32)}
        options = ort.RunOptions()  # one per run: a terminated one stays terminated
        names = list(self.output_names)

        def stop() -> None:
            options.terminate = True

        batch = feed[self.input_name]
        operations = None if self._bounds is None else self._bounds.cost(batch.shape).operations
        limit = run_time_limit(int(batch.shape[0]), operations, self.time_limit_s)
        try:
            values = self._runner.call(
                lambda: self._session.run(names, feed, options), limit, stop, str(self.path)
            )
        except RunTimeLimitError:
            raise
        except Exception as exc:  # onnxruntime raises its own untyped errors
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OnnxModelError(f"{self.path}: inference failed ({message})") from None
        return dict(zip(self.output_names, values, strict=True))

    def describe(self) -> str:
        text = f"onnxruntime {ort.__version__} on {self.device} ({', '.join(self.providers)})"
        if self.fallback_reason:
            text += f"; CUDA not used: {self.fallback_reason}"
        return text


def _requested_providers(
    device: str, tensorrt: bool, tf32: bool
) -> tuple[list[str | tuple[str, Mapping[str, str]]], str | None]:
    """What to ask onnxruntime for, and (for auto) why CUDA is not even tried."""
    if device == "cpu":
        return [CPU_EP], None
    available = ort.get_available_providers()
    if CUDA_EP not in available:
        reason = f"onnxruntime {ort.__version__} has no {CUDA_EP} (install onnxruntime-gpu)"
        if device == "cuda":
            raise ProviderError(f"CUDA asked for: {reason}")
        return [CPU_EP], reason
    preload_cuda_libraries()
    if device == "auto":
        # Asked for nothing in particular: a provider that cannot load is not tried, so
        # onnxruntime does not log its failure (the fallback reason says it once, calmly).
        unloadable = cuda_provider_unloadable()
        if unloadable is not None:
            return [CPU_EP], unloadable
    # TF32 off by default: parity is measured against strict fp32 PyTorch.
    providers: list[str | tuple[str, Mapping[str, str]]] = [
        (CUDA_EP, {"use_tf32": "1" if tf32 else "0"}),
        CPU_EP,
    ]
    if tensorrt:
        if TENSORRT_EP not in available:
            raise ProviderError(f"TensorRT requested but onnxruntime has no {TENSORRT_EP}")
        providers.insert(0, TENSORRT_EP)
    return providers, None


def open_onnx_session(
    path: str | Path,
    device: str = "auto",
    threads: int | None = None,
    *,
    tensorrt: bool = False,
    tf32: bool = False,
    ort_format: bool = False,
    spinning: bool = True,
    time_limit_s: float | None = None,
) -> OnnxSession:
    """An onnxruntime session on the device asked for, checked against what really runs.

    ort_format: the file is an onnxruntime .ort file (needed when its name does not end .ort).
    spinning: let idle intra-op threads spin for the next run (onnxruntime's default, a little
    faster: docs/precision_and_speed.md); off when something else needs the cores between runs.
    time_limit_s: seconds each run may take (None: run_time_limit's default for its cost).
    """
    name = check_device(device)
    path, time_limit_s = check_session_request(path, threads, time_limit_s)
    bounds = None
    if not ort_format and path.suffix != ".ort":
        # An .ort file is onnxruntime's own format (no ONNX protobuf to read): only this tool's
        # export makes one here, from a graph checked before.
        bounds = check_bounded_graph(path)
    providers, fallback_reason = _requested_providers(name, tensorrt, tf32)
    options = ort.SessionOptions()
    # fatal only: errors come back as exceptions, reported in one line naming the file (the
    # native log would print a second, unescaped, coloured copy); provider facts are ours
    options.log_severity_level = 4
    if ort_format:
        options.add_session_config_entry("session.load_model_format", "ORT")
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        # When a provider fails to load the graph, onnxruntime's wrapper prints an "EP Error"
        # banner to stdout before it retries on its fallback: the failure is reported below.
        with contextlib.redirect_stdout(io.StringIO()):
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # InvalidProtobuf, InvalidGraph, Fail ...: all mean a bad file
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise OnnxModelError(f"{path}: onnxruntime cannot load it ({message})") from None
    requested = tuple(p if isinstance(p, str) else p[0] for p in providers)
    result = OnnxSession(path, session, requested, fallback_reason, bounds)
    result.time_limit_s = time_limit_s
    if name != "cpu" and result.device != "cuda" and fallback_reason is None:
        reason = (
            f"{CUDA_EP} was requested but the session runs on {', '.join(result.providers)}: "
            f"{cuda_failure_reason()}"
        )
        if name == "cuda":
            raise ProviderError(f"CUDA asked for: {reason}")
        result.fallback_reason = reason
    return result


def check_runtime(runtime: str, ov_precision: str = "auto", device: str = "auto") -> str:
    """The runtime's name; for OpenVINO also its precision option, device and installation."""
    name = runtime.strip().lower()
    if name not in RUNTIMES:
        raise OptionError("runtime", f"must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if name == "openvino":
        from .openvino_session import check_execution_precision, require_openvino

        check_execution_precision(ov_precision)
        if check_device(device) == "cuda":
            raise OptionError("device", "cuda: the OpenVINO runtime runs on the CPU here")
        require_openvino()
    if name == "opencv":
        from .opencv_session import require_opencv_dnn

        if check_device(device) == "cuda":
            raise OptionError("device", "cuda: the OpenCV runtime runs on the CPU here")
        require_opencv_dnn()
    if name == "tflite":
        from .tflite_session import require_tflite

        if check_device(device) == "cuda":
            raise OptionError("device", "cuda: the TFLite runtime (LiteRT) runs on the CPU here")
        require_tflite()
    return name


def open_session(
    path: str | Path,
    runtime: str = "onnxruntime",
    device: str = "auto",
    threads: int | None = None,
    *,
    ov_precision: str = "auto",
    spinning: bool = True,
    time_limit_s: float | None = None,
) -> Session:
    """A session of the runtime asked for: OnnxSession, OpenVinoSession, OpenCvSession or
    TfliteSession (the last three CPU only here; TFLite converts the graph with onnx2tf first)."""
    name = check_runtime(runtime, ov_precision, device)
    if name == "onnxruntime":
        return open_onnx_session(
            path, device, threads, spinning=spinning, time_limit_s=time_limit_s
        )
    if name == "opencv":
        from .opencv_session import OpenCvSession

        return OpenCvSession(path, threads, time_limit_s=time_limit_s)
    if name == "tflite":
        from .tflite_session import TfliteSession

        return TfliteSession(path, threads, time_limit_s=time_limit_s)
    from .openvino_session import OpenVinoSession  # optional dependency

    return OpenVinoSession(path, threads, ov_precision, time_limit_s=time_limit_s)


# Like onnxruntime.tools.convert_onnx_models_to_ort's default: every optimization except the
# x86-only NCHWc layout, so the file runs on ARM phones as well as here.
ORT_FORMAT_DISABLED_OPTIMIZERS = ("NchwcTransformer",)


def save_ort_format(onnx_path: str | Path, ort_path: str | Path) -> None:
    """Write the onnxruntime (.ort, flatbuffer) form of an ONNX file, optimized for CPU."""
    options = ort.SessionOptions()
    options.log_severity_level = 4  # as open_onnx_session: failures are raised, not logged
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(ort_path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(
            str(onnx_path),
            sess_options=options,
            providers=[CPU_EP],
            disabled_optimizers=list(ORT_FORMAT_DISABLED_OPTIMIZERS),
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise OnnxModelError(
            f"{ort_path}: cannot write the onnxruntime format ({message})"
        ) from None


@contextlib.contextmanager
def strict_fp32(device: torch.device) -> Iterator[None]:
    """PyTorch in strict fp32 on CUDA: TF32 convolutions (cuDNN's default) would otherwise be
    measured as export error, since onnxruntime's CUDA provider runs with use_tf32=0."""
    if device.type != "cuda":
        yield
        return
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        yield
