"""Write outputs through a temporary file in the target directory, then rename.

A crash or a failed check never leaves a half-written file at the output path, and an input
file is never the output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from converter.core.errors import OutputExistsError


def check_output_path(out: Path, inputs: tuple[Path, ...] = (), force: bool = False) -> Path:
    """Refuse to overwrite an input (ever) or an existing output (without force)."""
    out = Path(out)
    resolved = out.resolve()
    for source in inputs:
        source_resolved = Path(source).resolve()
        if resolved == source_resolved or source_resolved in resolved.parents:
            raise OutputExistsError(f"{out}: refusing to write over or inside the input {source}")
    if out.is_dir():
        raise OutputExistsError(f"{out}: is a directory; give a file name for the output")
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: already exists; pass --force to replace it")
    if not out.parent.exists():
        raise OutputExistsError(f"{out}: the directory {out.parent} does not exist")
    return out


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a temporary path beside out; rename it to out only if the block succeeds."""
    out = Path(out)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
