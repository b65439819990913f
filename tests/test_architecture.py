"""The package's folders are layers: a module imports only its own folder and the layers below.

The order is ARCHITECTURE.md's; this test reads every import statement (lazy ones included) with
the ast module, so an upward import anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "converter"
LAYERS = {
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


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.module == "converter":
                names.extend(f"converter.{alias.name}" for alias in node.names)
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
    assert _stage(_imports(bad)[0]) == "cli"
