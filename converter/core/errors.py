"""One error hierarchy for the whole tool; the CLI maps each to an exit code.

Exit codes: 0 success, 1 a check ran and failed (parity, metric delta),
2 bad input (unreadable file, wrong variant, missing provider, bad data layout).
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """A foreign library's exception as one line: its first line of text, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ConverterError(Exception):
    """Base class: a message a user can act on, and the exit code the CLI returns."""

    exit_code = 2


class UsageError(ConverterError):
    """An option value that makes no sense (the CLI's own checks)."""


class CheckpointError(ConverterError):
    """A checkpoint file or directory cannot be read, or is not a ConvNeXtPose checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle would execute code; it was refused before anything ran."""


class VariantError(ConverterError):
    """An unknown variant name, or tensors that fit no known variant."""


class VariantMismatchError(VariantError):
    """The variant a user asked for disagrees with what the tensors are."""


class OutputError(ConverterError):
    """An output cannot be written where it was asked (an unwritable or impossible place)."""


class OutputExistsError(OutputError):
    """Refusing to overwrite an existing file (or the input) without --force."""


class OnnxModelError(ConverterError):
    """An ONNX file is unreadable, malformed, or does not fit the expected contract."""


class ProviderError(ConverterError):
    """A requested execution device (e.g. CUDA) is not really available."""


class DatasetError(ConverterError):
    """A Human3.6M root, annotation file or image set is missing or malformed."""


class CheckFailedError(ConverterError):
    """A numerical check ran and failed (parity, backend delta). Exit code 1."""

    exit_code = 1
