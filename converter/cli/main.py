"""Entry point of the ``cnp-convert`` command."""

from __future__ import annotations

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
