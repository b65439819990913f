"""The fixed sets of values options take, as enums Typer shows in --help and completes.

Each enum is built from the library's own tuple, so a new variant or precision appears here
without a second list to keep in step. Commands pass ``.value`` (a plain string) to the library.
Options that take a comma list of choices (``bench --precision``, ``eval --backend``) stay
strings, checked by ``comma_choices`` in Typer's error style and completed item by item.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

import typer

from ..core.choices import (
    CHECKPOINT_FORMATS,
    DATA_LAYOUTS,
    DEVICES,
    EXPORTERS,
    OV_EXECUTION_PRECISIONS,
    PRECISIONS,
    RUNTIMES,
    TARGETS,
)
from ..core.variants import VARIANTS


def _choice_enum(name: str, values: Sequence[str]) -> type[enum.Enum]:
    # str-valued (Python 3.10 has no StrEnum); commands hand the library .value, never the member.
    return enum.Enum(name, [(value, value) for value in values], type=str)  # type: ignore[return-value]


Variant = _choice_enum("Variant", tuple(VARIANTS))
# Typed in any case; help shows the names as the paper writes them (Typer would lower-case them).
VARIANT_METAVAR = f"<{'|'.join(VARIANTS)}>"
# One default for every command that places work on a device: auto (CUDA only where both
# PyTorch and the graph's runtime really run it, else CPU, said in one line).
Device = _choice_enum("Device", DEVICES)
DEFAULT_DEVICE = Device("auto")
# doctor's --device is what must work, so it names a device, never "auto".
RequiredDevice = _choice_enum("RequiredDevice", tuple(d for d in DEVICES if d != "auto"))
Precision = _choice_enum("Precision", PRECISIONS)
Exporter = _choice_enum("Exporter", EXPORTERS)
CheckpointFormat = _choice_enum("CheckpointFormat", CHECKPOINT_FORMATS)
Layout = _choice_enum("Layout", DATA_LAYOUTS)
Runtime = _choice_enum("Runtime", RUNTIMES)
Target = _choice_enum("Target", TARGETS)
OvPrecision = _choice_enum("OvPrecision", OV_EXECUTION_PRECISIONS)


def value(choice: enum.Enum | None) -> str | None:
    """The plain string the library takes (None stays None)."""
    return None if choice is None else str(choice.value)


def parse_comma_choices(text: str, choices: Sequence[str], option: str) -> list[str]:
    """'a,b' -> ['a', 'b']: each one of choices (any case), duplicates dropped, order kept."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown or not names:
        raise typer.BadParameter(
            f"{text!r}: a comma list of {', '.join(choices)}", param_hint=f"'{option}'"
        )
    return list(dict.fromkeys(names))


def comma_choices(choices: Sequence[str], option: str) -> dict[str, Callable]:
    """Option keywords for a comma list of choices: checked at parse time (exit 2, Typer's
    error style) and completed after the last comma."""

    def check(text: str | None) -> str | None:
        if text is None:
            return None
        return ",".join(parse_comma_choices(text, choices, option))

    def complete(incomplete: str) -> list[str]:
        head, _, last = incomplete.rpartition(",")
        taken = set(head.split(",")) if head else set()
        prefix = f"{head}," if head else ""
        return [f"{prefix}{c}" for c in choices if c.startswith(last.lower()) and c not in taken]

    return {"callback": check, "autocompletion": complete}
