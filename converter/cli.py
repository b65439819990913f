"""Entry point of the ``cnp-convert`` command."""

from __future__ import annotations

# Importing the command modules registers their commands on the shared app.
from converter import (
    cli_bench,  # noqa: F401
    cli_checkpoint,  # noqa: F401
    cli_demo,  # noqa: F401
    cli_eval,  # noqa: F401
    cli_export,  # noqa: F401
)
from converter.cli_app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
