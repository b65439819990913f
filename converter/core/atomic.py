"""Write outputs through a temporary file in the target directory, then publish it.

A crash or a failed check never leaves a half-written file at the output path, and an input
file is never the output. Publishing does not clobber: without overwrite, a file that appeared at
the output path meanwhile is kept and the new one is refused. The published file gets the mode
a plain open() would give it (0666 minus the umask), not mkstemp's private 0600.
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


_NAME_ROOM = (
    200  # of NAME_MAX (255): mkstemp adds 8 random characters, we add ".", "." and ".partial"
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: Path, out: Path, overwrite: bool = False) -> None:
    """Move a finished temporary file to out; without overwrite, never replace an existing file."""
    os.chmod(tmp, 0o666 & ~_umask())
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # fails if out exists: the check and the publish are one step
    except FileExistsError:
        raise OutputExistsError(f"{out}: appeared while it was being written; kept it") from None
    except OSError:  # a filesystem without hard links: the closest non-atomic equivalent
        if out.exists():
            raise OutputExistsError(f"{out}: already exists; pass --force to replace it") from None
        os.replace(tmp, out)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_output(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside out; publish it to out only if the block succeeds."""
    out = Path(out)
    prefix = f".{out.name[:_NAME_ROOM]}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        publish(tmp, out, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
