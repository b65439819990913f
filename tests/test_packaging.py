"""pyproject's dependency markers (exactly one onnxruntime build on every platform) and the
package's import name (cnp_convert, built from the folder converter/).

onnxruntime-gpu has wheels for Linux x86_64 and Windows AMD64 only (checked on the index for
1.31.1: none for macOS or Linux aarch64); the two distributions install the same module, so a
platform must never get both. `.ci/pip_install` proves the install itself on this machine.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
SOURCE = ROOT / "converter"  # the folder the package cnp_convert is built from
PLATFORMS = {  # label: (sys_platform, platform_machine, the onnxruntime build it should get)
    "Linux x86_64": ("linux", "x86_64", "onnxruntime-gpu"),
    "Windows x86_64": ("win32", "AMD64", "onnxruntime-gpu"),
    "Linux aarch64": ("linux", "aarch64", "onnxruntime"),
    "macOS arm64": ("darwin", "arm64", "onnxruntime"),
    "macOS x86_64": ("darwin", "x86_64", "onnxruntime"),
    "Windows ARM64": ("win32", "ARM64", "onnxruntime"),
}


def _pyproject() -> dict:
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)


def _project() -> dict:
    return _pyproject()["project"]


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


def test_tflite_extra_keeps_onnx2tf_below_its_pinning_releases() -> None:
    extras = _project()["optional-dependencies"]
    chosen = {r.name: r for r in (Requirement(t) for t in extras["tflite"])}
    onnx2tf = chosen["onnx2tf"].specifier
    # 1.28.8 converts right at opset 11 (docs/compatibility.md); 1.29 pins numpy 1.26.4
    assert onnx2tf.contains("1.28.8") and not onnx2tf.contains("1.29.0")
    assert {"tensorflow", "tf-keras", "ai-edge-litert"} <= {n.replace("_", "-") for n in chosen}
    assert "cnp-convert[tflite]" in extras["dev"]


def test_openvino_extra() -> None:
    (requirement,) = (Requirement(t) for t in _project()["optional-dependencies"]["openvino"])
    assert requirement.name == "openvino" and requirement.specifier.contains("2024.0")
    assert not requirement.specifier.contains("2023.3")


def test_the_wheel_holds_every_folder_as_cnp_convert() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"cnp_convert": "converter"}
    folders = {
        ".".join(("cnp_convert", *init.parent.relative_to(SOURCE).parts))
        for init in SOURCE.rglob("__init__.py")
    }
    assert sorted(setuptools["packages"]) == sorted(folders)
    assert set(setuptools["package-data"]) <= folders
    assert _project()["scripts"] == {"cnp-convert": "cnp_convert.cli.main:main"}


def test_no_module_imports_the_package_by_a_name() -> None:
    """Relative imports only: the same files run as cnp_convert (installed) and as converter (the
    tests, mutmut's copies)."""
    absolute = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )  # fmt: skip
            absolute += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.split(".")[0] in ("converter", "cnp_convert")
            ]
    assert absolute == []


DOC_IMPORT = re.compile(r"from (cnp_convert(?:\.\w+)*)\s+import ([\w, ]+)")


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_every_import_the_docs_show_exists() -> None:
    documents = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").glob("*.md")]
    shown = [m for doc in documents for m in DOC_IMPORT.finditer(doc.read_text())]
    assert len(shown) >= 8  # the README's, docs/commands.md's and docs/predict.md's examples
    for match in shown:
        module, names = match.group(1), [n.strip() for n in match.group(2).split(",")]
        where = SOURCE.joinpath(*module.split(".")[1:])
        path = where / "__init__.py" if where.is_dir() else where.with_suffix(".py")
        assert path.is_file(), match.group(0)
        submodules = {p.stem for p in where.glob("*.py")} if where.is_dir() else set()
        missing = set(names) - _top_level_names(path) - submodules
        assert not missing, (match.group(0), missing)


def test_the_checker_sees_a_missing_name(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from x import a as b\nc: int = 1\ndef d(): pass\nclass E: pass\n")
    assert _top_level_names(module) == {"b", "c", "d", "E"}
