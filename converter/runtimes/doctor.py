"""The environment report users paste into bug reports: what is installed and what really starts.

Each execution provider is tried on a one-node graph and read back from ``get_providers()``: a
listed provider that does not start is reported with the loader's reason and the pip command
that fixes the common causes (no GPU build of onnxruntime, CUDA/cuDNN libraries not found, an
onnxruntime built for another CUDA major than the PyTorch that brings the libraries).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import platform
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from .. import __version__
from ..core.errors import OptionError
from .sessions import (
    CPU_EP,
    CUDA_EP,
    TENSORRT_EP,
    cuda_failure_reason,
    onnxruntime_cuda_version,
    preload_cuda_libraries,
)

PROBED = (CPU_EP, CUDA_EP, TENSORRT_EP)
# PyPI's onnxruntime-gpu releases built for CUDA 12 (later ones are built for CUDA 13).
ORT_FOR_CUDA = {"12": "onnxruntime-gpu>=1.21,<1.27", "13": "onnxruntime-gpu>=1.27"}
_MISSING_LIBRARY = re.compile(r"(lib[\w.+-]+\.so(?:\.\d+)*)")


@dataclass(frozen=True)
class ProviderCheck:
    name: str
    listed: bool  # in onnxruntime.get_available_providers()
    starts: bool  # a session asked for it really runs on it
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    converter: str
    python: str
    os: str
    cpu: str
    cpu_count: int
    cpu_features: tuple[str, ...]
    torch: str
    torch_cuda: str | None
    torch_cudnn: int | None
    gpus: tuple[str, ...]
    onnxruntime: str
    onnxruntime_package: str
    onnxruntime_cuda: str | None
    providers: tuple[ProviderCheck, ...]
    packages: dict[str, str | None]
    device: str  # what the user asked to work: cpu or cuda
    advice: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        wanted = CUDA_EP if self.device == "cuda" else CPU_EP
        return any(p.name == wanted and p.starts for p in self.providers)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["passed"] = self.passed
        return out

    def lines(self) -> list[str]:
        out = [
            f"cnp-convert {self.converter}, Python {self.python}, {self.os}",
            f"CPU        {self.cpu} ({self.cpu_count} cores; "
            f"{', '.join(self.cpu_features) or '-'})",
            f"PyTorch    {self.torch}, CUDA {self.torch_cuda or 'none (CPU build)'}, "
            f"cuDNN {self.torch_cudnn or '-'}",
            f"GPUs       {'; '.join(self.gpus) or 'none visible to PyTorch'}",
            f"onnxrt     {self.onnxruntime} ({self.onnxruntime_package}"
            + (f", built for CUDA {self.onnxruntime_cuda})" if self.onnxruntime_cuda else ")"),
        ]
        for check in self.providers:
            state = (
                "starts"
                if check.starts
                else ("listed, does NOT start" if check.listed else "absent")
            )
            out.append(f"provider   {check.name}: {state}; {check.detail}")
            if check.fix:
                out.append(f"           fix: {check.fix}")
        out.append(
            "packages   " + ", ".join(f"{k} {v or 'missing'}" for k, v in self.packages.items())
        )
        out.extend(f"advice     {line}" for line in self.advice)
        verdict = "OK" if self.passed else "NOT OK"
        out.append(f"{verdict}: device {self.device} {'works' if self.passed else 'does not work'}")
        return out


CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_identity() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and which of CPU_FEATURES it reports (Linux /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines()[:64]:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return name, tuple(f for f in CPU_FEATURES if f in flags)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _probe_graph(directory: Path) -> Path:
    """A one-node float graph every provider can run."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    path = directory / "probe.onnx"
    onnx.save(model, str(path))
    return path


def _starts(path: Path, provider: str) -> tuple[bool, str]:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the report says what failed; onnxruntime's log would repeat it
    providers = [provider] if provider == CPU_EP else [provider, CPU_EP]
    chatter = io.StringIO()  # onnxruntime's Python layer prints its fallbacks; we report them
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        return False, " ".join(str(exc).split())[:200]
    running = session.get_providers()
    if provider in running:
        return True, f"session runs on {', '.join(running)}"
    return False, f"session fell back to {', '.join(running)}"


def provider_fix(
    provider: str, listed: bool, reason: str, torch_cuda: str | None, ort_cuda: str | None
) -> str | None:
    """The pip command that fixes the usual cause of a provider that does not start."""
    if provider == CPU_EP:
        return None
    if not listed:
        return "pip uninstall -y onnxruntime && pip install onnxruntime-gpu  (Linux/Windows)"
    torch_major = torch_cuda.split(".")[0] if torch_cuda else None
    ort_major = ort_cuda.split(".")[0] if ort_cuda else None
    if torch_major and ort_major and torch_major != ort_major and torch_major in ORT_FOR_CUDA:
        return (
            f'pip install "{ORT_FOR_CUDA[torch_major]}"  (this onnxruntime-gpu is built for CUDA '
            f"{ort_major}, but the PyTorch here brings CUDA {torch_major} libraries)"
        )
    missing = _MISSING_LIBRARY.search(reason)
    if provider == TENSORRT_EP:
        if missing and "nvinfer" in missing.group(1):
            return f"pip install tensorrt  ({missing.group(1)} not found)"
        return None
    if missing and ort_major:
        return (
            f'pip install "onnxruntime-gpu[cuda,cudnn]"  ({missing.group(1)} not found: this '
            f"brings the CUDA {ort_major} and cuDNN libraries as pip packages)"
        )
    return None


NO_GPU_ADVICE = (
    "no NVIDIA GPU on this machine (no /dev/nvidia<N>): the CUDA and TensorRT providers cannot "
    "start here whatever is installed; the CPU is what runs"
)


def nvidia_gpu_present() -> bool | None:
    """Whether the OS shows an NVIDIA GPU: its /dev/nvidia<N> device files on Linux; None (not
    known) elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return any(Path("/dev").glob("nvidia[0-9]*"))


def run_doctor(device: str = "cpu") -> DoctorReport:
    """The report; device ("cpu" or "cuda") is what must work for the report to pass."""
    device = device.strip().lower()
    if device not in ("cpu", "cuda"):
        raise OptionError("device", f"must be cpu or cuda, not {device!r}")
    preload_note = preload_cuda_libraries()
    torch_cuda = torch.version.cuda
    ort_cuda = onnxruntime_cuda_version()
    listed = set(ort.get_available_providers())
    # Without a GPU no package makes the GPU providers start: advise none (one line says why).
    no_gpu = nvidia_gpu_present() is False
    checks = []
    with tempfile.TemporaryDirectory(prefix="cnp-doctor-") as tmp:
        probe = _probe_graph(Path(tmp))
        for provider in PROBED:
            if provider not in listed:
                detail = "not in this onnxruntime build"
                fix = None if no_gpu else provider_fix(provider, False, "", torch_cuda, ort_cuda)
                checks.append(ProviderCheck(provider, False, False, detail, fix))
                continue
            starts, detail = _starts(probe, provider)
            if not starts and provider == CUDA_EP:
                detail = f"{detail}; {cuda_failure_reason()}"
            fix = (
                None
                if starts or (no_gpu and provider != CPU_EP)
                else provider_fix(provider, True, detail, torch_cuda, ort_cuda)
            )
            checks.append(ProviderCheck(provider, True, starts, detail, fix))
    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            memory = props.total_memory / 2**30
            gpus.append(f"{props.name} (sm_{props.major}{props.minor}, {memory:.0f} GiB)")
    cpu, features = cpu_identity()
    advice = []
    if preload_note:
        advice.append(preload_note)
    if no_gpu:
        advice.append(NO_GPU_ADVICE)
    if device == "cuda" and torch_cuda is None:
        advice.append(
            "PyTorch is a CPU-only build: the PyTorch reference on CUDA needs a CUDA "
            "PyTorch (pip install torch from https://download.pytorch.org/whl/cu<version>)"
        )
    names = ("onnx", "onnxscript", "onnxsim", "opencv-python-headless", "numpy", "safetensors")
    packages = {name: _version(name) for name in (*names, "typer")}
    return DoctorReport(
        converter=__version__,
        python=sys.version.split()[0],
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        cpu=cpu,
        cpu_count=os.cpu_count() or 0,
        cpu_features=features,
        torch=torch.__version__,
        torch_cuda=torch_cuda,
        torch_cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        gpus=tuple(gpus),
        onnxruntime=ort.__version__,
        onnxruntime_package="onnxruntime-gpu" if _version("onnxruntime-gpu") else "onnxruntime",
        onnxruntime_cuda=ort_cuda,
        providers=tuple(checks),
        packages=packages,
        device=device,
        advice=tuple(advice),
    )
