"""Progress of slow library work, reported to whoever shows it (the CLI draws it with Rich).

The library never prints progress itself: a long function takes an optional callback and calls
it as ``progress(stage, done, total)`` -- a stage name such as "eval" or "simplify (onnxsim)",
the units done so far, and the units in all (None where the stage cannot count its work).
A new stage name means the earlier stages are over.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str, int, "int | None"], None]


def _silent(stage: str, done: int, total: int | None) -> None:
    """No display asked for."""


def progress_callback(progress: ProgressCallback | bool | None) -> ProgressCallback:
    """A callable to report to: the one given, or one that shows nothing (None or a bool: the
    library draws nothing itself)."""
    return progress if callable(progress) else _silent
