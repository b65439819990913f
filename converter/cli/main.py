"""Entry point of the ``cnp-convert`` command."""

from __future__ import annotations

import signal
import sys

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


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app()


if __name__ == "__main__":
    main()
