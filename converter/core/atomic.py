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

from .errors import OutputError, OutputExistsError, ReplaceRefusedError


def check_writable(directory: Path, shown: Path) -> None:
    """Refuse, before any work, a place where no file can be made: the nearest folder that
    exists must take a temporary file (read-only, immutable, /proc and full disks fail here, not
    after the work). Nothing is left behind."""
    existing = Path(directory)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputExistsError(f"{shown}: {existing} is not a directory")
    try:
        # Linux: an O_TMPFILE file, which never has a name, so a signal arriving here cannot
        # leave one behind; elsewhere, a named file unlinked at once.
        with tempfile.TemporaryFile(prefix=".cnp-probe.", dir=existing):
            pass
    except OSError as exc:
        raise OutputError(
            f"{shown}: nothing can be written in {existing} ({exc.strerror})"
        ) from None


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
        raise ReplaceRefusedError(f"{out}: already exists")
    if not out.parent.exists():
        raise OutputExistsError(f"{out}: the directory {out.parent} does not exist")
    check_writable(out.parent, out)
    return out


def check_output_dir(
    directory: Path,
    inputs: tuple[Path, ...] = (),
    force: bool = False,
    names: tuple[str, ...] | None = None,
) -> Path:
    """Refuse a folder for outputs that is a file, is or lies inside an input folder (resolved:
    links do not hide it), or, without force, already holds one of names; names None (outputs
    not known in advance) refuses a folder that holds anything."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"{directory}: exists and is not a directory")
    resolved = directory.resolve()
    for source in inputs:
        source_resolved = Path(source).resolve()
        if resolved == source_resolved or source_resolved in resolved.parents:
            raise OutputExistsError(f"{directory}: refusing to write inside the input {source}")
    check_writable(directory, directory)
    if force or not directory.is_dir():
        return directory
    if names is None:
        if any(directory.iterdir()):
            raise ReplaceRefusedError(f"{directory}: is not empty")
        return directory
    present = [name for name in names if (directory / name).exists()]
    if present:
        raise ReplaceRefusedError(f"{directory / present[0]}: already exists")
    return directory


def make_output_dir(directory: Path) -> Path:
    """Create directory (and its parents), or say in one line why it cannot be."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the folder ({exc.strerror})") from None
    return directory


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
            raise ReplaceRefusedError(f"{out}: already exists") from None
        os.replace(tmp, out)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_output(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside out; publish it to out only if the block succeeds."""
    with output_set(overwrite) as outputs:
        yield outputs.temporary(out)


class OutputSet:
    """Several outputs of one command, published together or not at all.

    temporary(out) gives a temporary file beside out; publish() moves every one to its place.
    Without overwrite, if one cannot be published (a file appeared at its path), the ones this
    set already published are removed again, so no partial set is left; with overwrite the
    replacements are renames in the same folders, which do not fail halfway in practice.
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._pending: list[tuple[Path, Path]] = []

    def temporary(self, out: Path) -> Path:
        out = Path(out)
        prefix = f".{out.name[:_NAME_ROOM]}."
        try:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=out.parent)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write in {out.parent} ({exc.strerror})") from None
        os.close(fd)
        self._pending.append((Path(name), out))
        return Path(name)

    def write(self, out: Path, content: bytes) -> Path:
        """content for out, published with the rest of the set."""
        self.temporary(out).write_bytes(content)
        return Path(out)

    def publish(self) -> None:
        done: list[Path] = []
        try:
            for tmp, out in self._pending:
                publish(tmp, out, self.overwrite)
                done.append(out)
        except BaseException:
            if not self.overwrite:
                for out in done:  # ours: published moments ago, under names that were free
                    out.unlink(missing_ok=True)
            raise
        finally:
            self.discard()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()


@contextlib.contextmanager
def output_set(overwrite: bool = False) -> Iterator[OutputSet]:
    """An OutputSet published when the block succeeds; its temporaries removed in every case."""
    outputs = OutputSet(overwrite)
    try:
        yield outputs
        outputs.publish()
    finally:
        outputs.discard()


def write_output(out: Path, content: bytes, overwrite: bool = False) -> Path:
    """Publish content at out through a temporary file (see atomic_output)."""
    out = Path(out)
    with atomic_output(out, overwrite) as tmp:
        tmp.write_bytes(content)
    return out
