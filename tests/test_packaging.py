"""pyproject's dependency markers: exactly one onnxruntime build on every platform.

onnxruntime-gpu has wheels for Linux x86_64 and Windows AMD64 only (checked on the index for
1.31.1: none for macOS or Linux aarch64); the two distributions install the same module, so a
platform must never get both. `.ci/pip_install` proves the install itself on this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PLATFORMS = {  # label: (sys_platform, platform_machine, the onnxruntime build it should get)
    "Linux x86_64": ("linux", "x86_64", "onnxruntime-gpu"),
    "Windows x86_64": ("win32", "AMD64", "onnxruntime-gpu"),
    "Linux aarch64": ("linux", "aarch64", "onnxruntime"),
    "macOS arm64": ("darwin", "arm64", "onnxruntime"),
    "macOS x86_64": ("darwin", "x86_64", "onnxruntime"),
    "Windows ARM64": ("win32", "ARM64", "onnxruntime"),
}


def _project() -> dict:
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)["project"]


def _selected(requirements: list[str], platform: str, machine: str, extra: str = "") -> list:
    env = {"sys_platform": platform, "platform_machine": machine, "extra": extra}
    parsed = [Requirement(text) for text in requirements]
    return [r for r in parsed if r.marker is None or r.marker.evaluate(env)]


@pytest.mark.parametrize("label", list(PLATFORMS))
def test_each_platform_gets_exactly_one_onnxruntime(label: str) -> None:
    platform, machine, expected = PLATFORMS[label]
    chosen = _selected(_project()["dependencies"], platform, machine)
    runtimes = [r.name for r in chosen if r.name.startswith("onnxruntime")]
    assert runtimes == [expected]
    # The rest does not depend on the platform.
    assert {r.name for r in chosen} - {expected} == {
        "torch", "onnx", "onnxscript", "onnxsim", "numpy", "typer", "rich", "safetensors",
        "opencv-python-headless",
    }  # fmt: skip


@pytest.mark.parametrize("label", list(PLATFORMS))
def test_gpu_extra_adds_the_cuda_libraries_only_beside_onnxruntime_gpu(label: str) -> None:
    platform, machine, expected = PLATFORMS[label]
    extras = _project()["optional-dependencies"]
    chosen = _selected(extras["gpu"], platform, machine, "gpu")
    if expected == "onnxruntime-gpu":
        assert [(r.name, sorted(r.extras)) for r in chosen] == [
            ("onnxruntime-gpu", ["cuda", "cudnn"])
        ]
    else:
        assert chosen == []  # no CUDA wheels there; the extra installs nothing


def test_openvino_extra() -> None:
    (requirement,) = (Requirement(t) for t in _project()["optional-dependencies"]["openvino"])
    assert requirement.name == "openvino" and requirement.specifier.contains("2024.0")
    assert not requirement.specifier.contains("2023.3")
