"""Entry point of the ``cnp-convert`` command."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from typing import NoReturn

# Importing the command modules registers their commands on the shared app.
from converter.cli import (
    bench,  # noqa: F401
    checkpoint,  # noqa: F401
    demo,  # noqa: F401
    doctor,  # noqa: F401
    eval,  # noqa: F401
    export,  # noqa: F401
)
from converter.cli.app import app


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the stack, so temporary outputs are removed as on Ctrl-C.
    sys.exit(128 + signum)


def _leave(code: object) -> NoReturn:
    """Exit with code (SystemExit's: None, an int or a message) without finalizing the runtime.

    Tearing torch, onnxruntime and some 1,500 modules down takes 0.4-0.6 s here and does nothing
    a user needs: by now outputs are published and temporary files removed (context managers),
    stdio is flushed below and the atexit handlers (weakref finalizers among them) still run.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    status = 0 if code is None else code if isinstance(code, int) else 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head) or stream
            stream.flush()
    os._exit(status)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except SystemExit as done:  # Typer ends every run, success included, with SystemExit
        _leave(done.code)
    _leave(0)


if __name__ == "__main__":
    main()
