"""``cnp-convert doctor``: the environment report, and whether the asked-for device works."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from .app import app, echo, emit_json, handle_errors
from .choices import RequiredDevice
from .options import json_option

if TYPE_CHECKING:
    pass


@app.command("doctor")
@handle_errors
def doctor_command(
    device: RequiredDevice = typer.Option(
        "cpu", "--device", case_sensitive=False, help="What must work (exit 1 if not)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Python, CPU, PyTorch, onnxruntime and each provider: listed, and whether it really starts."""
    from ..runtimes.doctor import run_doctor

    report = run_doctor(str(device.value))
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines():
            echo(line)
    if not report.passed:
        raise typer.Exit(1)
