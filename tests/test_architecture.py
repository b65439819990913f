"""The package's folders are layers: a module imports only its own folder and the layers below.

The order is ARCHITECTURE.md's; this test reads every import statement (lazy ones included) with
the ast module, so an upward import anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "converter"
LAYERS = {
    "__main__": 7,
    "core": 0,
    "checkpoints": 1,
    "graphs": 1,
    "h36m": 1,
    "runtimes": 1,
    "verdicts": 2,
    "export": 3,
    "evaluation": 3,
    "prediction": 4,
    "demo": 5,
    "cli": 6,
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "converter" or len(parts) < 2:
        return None
    return parts[1]


def _package_of(path: Path) -> list[str]:
    """The dotted package a module file belongs to, under the import name `converter`."""
    parts = ["converter", *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1]  # a module's package; an __init__'s own folder


def _imports(path: Path, package: list[str] | None = None) -> list[str]:
    """Every module path.py imports, relative imports resolved against its package."""
    package = _package_of(path) if package is None else package
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from PACKAGE import name` may import a module: keep both readings.
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_every_stage_folder_has_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert folders | modules == set(LAYERS)


def test_no_module_imports_upward_or_sideways() -> None:
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        own = relative.parts[0]
        if own == "__init__":
            continue
        for module in _imports(path):
            other = _stage(module)
            if other in (None, own, "__version__"):
                continue
            if LAYERS[other] >= LAYERS[own]:
                offences.append(f"{relative} imports {module}")
    assert offences == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from converter.cli.app import app\n    return app\n")
    assert _stage(_imports(bad, ["converter", "core"])[0]) == "cli"


def test_the_checker_resolves_relative_imports(tmp_path: Path) -> None:
    # As converter/core/m.py: `..cli.app` is converter.cli.app, `.` names its own folder, and
    # `from .. import cli` is the cli folder.
    bad = tmp_path / "m.py"
    bad.write_text("from ..cli.app import app\nfrom . import errors\nfrom .. import cli\n")
    names = _imports(bad, ["converter", "core"])
    assert [_stage(name) for name in names] == ["cli", "cli", "core", "core", None, "cli"]
