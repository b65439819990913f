"""The Typer app and what every command shares: error mapping, JSON or human output, warnings,
progress and tables.

Commands live in the other modules of this folder, each a thin layer that parses options and
calls one library function. Domain errors are caught once here: one line on stderr, then the
error's exit code; under --json also a JSON object on stdout. Set CNP_DEBUG=1 to see tracebacks.
Rich draws progress (stderr, terminals only) and tables; the library never imports it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from .. import __version__
from ..core.errors import ConverterError, OptionError, remedy_text
from ..core.progress import ProgressCallback


@dataclass
class OutputSettings:
    """How this invocation prints: --quiet/--verbose from the app, --json from the command."""

    quiet: bool = False
    verbose: bool = False
    json: bool = False
    pending_json: Any = None  # the command's JSON document, printed once when it ends
    in_command: bool = False
    stdout_closed: bool = False  # the reader went away (| head): later output is dropped


SETTINGS = OutputSettings()
FILE_SYSTEM_ERRNOS = frozenset(
    {
        errno.ENAMETOOLONG, errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
        errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EEXIST,
    }
)  # fmt: skip


def _json_error(message: str, exit_code: int) -> dict[str, object]:
    return {"error": message, "exit_code": exit_code}


# Typer's usage error (the parent of BadParameter; newer Typer versions carry their own click).
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]


class _Group(TyperGroup):
    """Typer's group; a bad option of a --json command also answers in JSON on stdout."""

    def invoke(self, ctx: typer.Context) -> Any:
        args = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            if "--json" in args:
                message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
                _write_json(_json_error(message, exc.exit_code))  # type: ignore[attr-defined]
            raise


app = typer.Typer(
    name="cnp-convert",
    cls=_Group,
    help="Turn released ConvNeXtPose checkpoints into verified ONNX models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(command: F) -> F:
    """Turn ConverterError into 'error: ...' on stderr and the error's exit code.

    Under --json the command's document is printed once, at the end: on an error with the
    error's message and exit code added (or as {"error", "exit_code"} alone), so stdout always
    holds exactly one JSON document."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        SETTINGS.json = bool(kwargs.get("as_json", False))
        SETTINGS.pending_json, SETTINGS.in_command = None, True
        SETTINGS.stdout_closed = False
        error: dict[str, object] | None = None
        # Provider loading failures are reported by the tool in one honest line; onnxruntime's
        # own coloured log of the same failure would only add noise (and reach stdout under
        # --json). Set here, when a command runs: --help and completion import no runtime.
        from ..runtimes.onnxruntime_log import quiet_onnxruntime

        quiet_onnxruntime(SETTINGS.verbose)
        try:
            return command(*args, **kwargs)
        except ConverterError as exc:
            if os.environ.get("CNP_DEBUG"):  # the traceback too, but the same exit code
                traceback.print_exc(file=sys.stderr)
            message = printable(cli_message(exc))  # always one line
            typer.echo(f"error: {message}", err=True)
            error = _json_error(message, exc.exit_code)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            # What the file system refuses (a name too long, a full disk, a file over the size
            # limit, a read-only place) is about the paths given, wherever it surfaces: one
            # line naming the file, exit 2, and the temporary outputs already removed.
            if exc.errno not in FILE_SYSTEM_ERRNOS:
                raise
            if os.environ.get("CNP_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            where = f"{exc.filename}: " if exc.filename else ""
            message = printable(f"{where}{exc.strerror or type(exc).__name__}")
            typer.echo(f"error: {message}", err=True)
            error = _json_error(message, 2)
            raise typer.Exit(2) from None
        finally:
            pending, SETTINGS.pending_json, SETTINGS.in_command = SETTINGS.pending_json, None, False
            if SETTINGS.json and error is not None:
                pending = {**pending, **error} if isinstance(pending, dict) else error
            if pending is not None:
                _write_json(pending)

    return wrapper  # type: ignore[return-value]


def flag(option: str) -> str:
    """The flag of an options field: calibration_count -> --calibration-count."""
    return "--" + option.replace("_", "-")


def cli_message(exc: ConverterError) -> str:
    """The library's message in the CLI's words: options named by their flags."""
    text = f"{flag(exc.option)} {exc.problem}" if isinstance(exc, OptionError) else exc.message
    return text + remedy_text(exc.remedies, flag)


MAX_LINE_CHARS = 2000  # a printed line; a checkpoint key or file name can be megabytes long


def printable(text: str) -> str:
    """One line for a terminal or a log: control characters from untrusted strings (a file
    name, a checkpoint's source name, a graph's metadata), newlines included, are shown escaped
    so they cannot forge or hide lines; past MAX_LINE_CHARS the rest is counted, not shown."""
    if len(text) > MAX_LINE_CHARS:
        text = f"{text[:MAX_LINE_CHARS]}... ({len(text) - MAX_LINE_CHARS:,} more characters)"
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def to_stdout(write: Callable[[], None]) -> None:
    """Run one write to stdout. A reader that stops reading (`| head -1`) closes the pipe: that
    is the reader's choice, not a failure, so the rest of the output is dropped and the command
    ends with its own exit code (Click would exit 1)."""
    if SETTINGS.stdout_closed:
        return
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        SETTINGS.stdout_closed = True
        # Point the descriptor at /dev/null so that no later flush (Python's own at exit
        # included) meets the closed pipe again.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def echo(text: str, err: bool = False) -> None:
    if err:
        typer.echo(printable(text), err=True)
    else:
        to_stdout(lambda: typer.echo(printable(text)))


def warn(message: str) -> None:
    """Every warning goes through here: stderr (stdout stays parseable with --json), none under
    --quiet."""
    if not SETTINGS.quiet:
        echo(f"warning: {message}", err=True)


def note(message: str) -> None:
    """What the tool chose for the user, said calmly: stderr, none under --quiet."""
    if not SETTINGS.quiet:
        echo(f"note: {message}", err=True)


def _write_json(payload: Any) -> None:
    to_stdout(lambda: sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False) + "\n"))


def emit_json(payload: Any) -> None:
    """The command's JSON result; inside a command it is printed when the command ends."""
    if SETTINGS.in_command:
        SETTINGS.pending_json = payload
    else:
        _write_json(payload)


# ---------------------------------------------------------------------------------------------
# Progress and tables


@contextlib.contextmanager
def progress_display(stream: TextIO | None = None) -> Iterator[ProgressCallback | None]:
    """A Rich progress display on stderr for the library's progress callback, or None (nothing
    drawn) when stderr is not a terminal, under --quiet and under --json.

    Each new stage name is a new line (bar, count, elapsed time and ETA where the total is
    known; a spinner where it is not); starting one marks the earlier ones done."""
    stream = stream if stream is not None else sys.stderr
    if SETTINGS.quiet or SETTINGS.json or not stream.isatty():
        yield None
        return
    display = Progress(
        SpinnerColumn(finished_text="[green]done"),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),  # n/total where the stage can count its work
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=stream),
    )
    tasks: dict[str, TaskID] = {}

    def finish_all() -> None:
        for task in display.tasks:
            if not task.finished:
                display.update(task.id, total=task.total or 1, completed=task.total or 1)

    def report(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            finish_all()  # an open-ended stage is done when the next one starts
            tasks[stage] = display.add_task(printable(stage), total=total, count="")
        count = f"{done}/{total}" if total is not None else ""
        display.update(tasks[stage], completed=done, total=total, count=count)

    with display:
        yield report
        finish_all()  # the work ended normally: every stage is done


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Collection[int] = ()
) -> Table:
    """A Rich table of plain text (cells are never read as markup); the columns whose index is
    in `numeric` are right-aligned and never wrapped or cut."""
    result = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for index, header in enumerate(headers):
        number = index in numeric
        result.add_column(Text(header), justify="right" if number else "left", no_wrap=number)
    for row in rows:
        result.add_row(*(Text(printable(str(cell))) for cell in row))
    return result


PLAIN_WIDTH = 100  # what a log or a pipe gets: wider tables are stacked


def print_table(rendered: Table) -> None:
    """A table on stdout, never losing a column: as a table where it fits (the terminal's
    width; PLAIN_WIDTH when redirected, without colour), else stacked, one block per row with
    each column's header beside its value."""
    terminal = sys.stdout.isatty()
    console = Console(
        file=sys.stdout, width=None if terminal else PLAIN_WIDTH, no_color=not terminal
    )
    natural = Console(file=io.StringIO(), width=10_000).measure(rendered).maximum
    if natural <= console.width:
        to_stdout(lambda: console.print(rendered, crop=False, soft_wrap=False))
        return
    headers = [
        column.header.plain if isinstance(column.header, Text) else str(column.header)
        for column in rendered.columns
    ]
    cells = [
        [cell.plain if isinstance(cell, Text) else str(cell) for cell in column.cells]
        for column in rendered.columns
    ]
    room = max(len(h) for h in headers)
    lines = []
    for index in range(rendered.row_count):
        if index:
            lines.append("")
        for header, column in zip(headers, cells, strict=True):
            lines.append(f"{header:<{room}}  {column[index]}")
    to_stdout(lambda: typer.echo("\n".join(lines)))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnp-convert {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Only results and errors: no warnings, no progress."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", help="Let onnxruntime's own log through (warnings and errors)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Turn released ConvNeXtPose checkpoints into verified ONNX models."""
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose contradict each other")
    SETTINGS.quiet, SETTINGS.verbose = quiet, verbose
