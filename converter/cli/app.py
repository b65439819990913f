"""The Typer app and what every command shares: error mapping, JSON or human output, warnings.

Commands live in the other modules of this folder, each a thin layer that parses options and
calls one library function. Domain errors are caught once here: one line on stderr, then the
error's exit code.
Set CNP_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from converter import __version__
from converter.core.errors import ConverterError
from converter.verdicts.runtime import quiet_onnxruntime

app = typer.Typer(
    name="cnp-convert",
    help="Turn released ConvNeXtPose checkpoints into verified ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

RUNTIME_HELP = (
    'onnxruntime, or openvino (CPU; pip install "cnp-convert[openvino]"). The verdict follows '
    "the precision the runtime reports it computes in."
)
OV_PRECISION_HELP = (
    "openvino: auto (its own choice: bf16 on CPUs with AMX/AVX-512 BF16, judged by the bf16 pose "
    "budget), f32 (judged by the fp32 floor rule) or bf16."
)


def handle_errors(command: F) -> F:
    """Turn ConverterError into 'error: ...' on stderr and the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConverterError as exc:
            if os.environ.get("CNP_DEBUG"):
                raise
            message = " ".join(str(exc).split())  # always one line
            echo(f"error: {message}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def printable(text: str) -> str:
    """Text for a terminal: control characters from untrusted strings (a checkpoint's source
    name, a graph's metadata) are shown escaped, so they cannot forge or hide lines."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch == "\n" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def echo(text: str, err: bool = False) -> None:
    typer.echo(printable(text), err=err)


def warn(message: str) -> None:
    """Warnings go to stderr so stdout stays parseable with --json."""
    echo(f"warning: {message}", err=True)


def emit_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnp-convert {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", help="Let onnxruntime's own log through (warnings and errors)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Turn released ConvNeXtPose checkpoints into verified ONNX models."""
    # Provider loading failures are reported by the tool in one honest line; onnxruntime's own
    # coloured log of the same failure would only add noise (and reach stdout under --json).
    quiet_onnxruntime(verbose)
