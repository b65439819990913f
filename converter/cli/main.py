"""Entry point of the ``cnp-convert`` command."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Not a KeyboardInterrupt, which Click would turn into "Aborted!" and
    exit 1: a BaseException passes every handler, so context managers remove temporary outputs
    as it unwinds, and main() says one line and exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


RETRY_S = 0.05  # how soon a signal that came during an import is delivered again


def _in_import(frame: FrameType | None) -> bool:
    """Whether the interrupted code is running an import (its frames pass through importlib)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # An exception in the middle of an import leaves half-made modules (numpy's then recurse on
    # their own names; onnxruntime's turns it into "ImportError: initialization failed"): while
    # anything imports, at start-up or in a command's lazy imports, the signal is sent again a
    # moment later, until it lands outside an import.
    if _in_import(frame):
        retry = threading.Timer(RETRY_S, os.kill, (os.getpid(), signum))
        retry.daemon = True
        retry.start()
        return
    raise Interrupted(signum)


def _commands():
    """The app with every command registered (importing a command module registers it)."""
    from . import bench, checkpoint, demo, doctor, eval, export, predict  # noqa: F401
    from .app import app

    return app


def __getattr__(name: str) -> object:
    if name == "app":  # converter.cli.main.app, as tests and `python -m` users import it
        return _commands()
    raise AttributeError(name)


def _leave(code: object) -> NoReturn:
    """Exit with code (SystemExit's: None, an int or a message) without finalizing the runtime.

    Tearing torch, onnxruntime and the modules they load down takes a noticeable part of a
    second (docs/flow.md) and does nothing a user needs: by now outputs are published and
    temporary files removed (context managers), stdio is flushed below and the atexit handlers
    (weakref finalizers among them) still run.
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
    # Installed before the heavy imports: Ctrl-C in the first seconds is one line too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        _commands()()
    except SystemExit as done:  # Typer ends every run, success included, with SystemExit
        _leave(done.code)
    except Interrupted as stop:
        name = "interrupted" if stop.signum == signal.SIGINT else "terminated"
        print(f"{name}: nothing half-written was kept", file=sys.stderr)
        _leave(128 + stop.signum)
    _leave(0)


if __name__ == "__main__":
    main()
