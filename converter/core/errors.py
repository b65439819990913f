"""One error hierarchy for the whole tool; the CLI maps each to an exit code.

Exit codes: 0 success, 1 a check ran and failed (parity, metric delta),
2 bad input (unreadable file, wrong variant, missing provider, bad data layout).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def first_line(exc: BaseException) -> str:
    """A foreign library's exception as one line: its first line of text, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ConverterError(Exception):
    """Base class: a message a user can act on, and the exit code the CLI returns.

    remedies: (option, phrase) pairs, the options that would fix it and what to give them, as in
    ("images", "DIR if the images are elsewhere"); the message ends "; pass images DIR ...",
    where a CLI writes its flag (--images) instead. Library messages never name flags.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, remedies: Sequence[tuple[str, str]] = ()) -> None:
        self.message, self.remedies = message, tuple(remedies)
        super().__init__(message + remedy_text(self.remedies, lambda option: option))


def remedy_text(remedies: Sequence[tuple[str, str]], name: Callable[[str], str]) -> str:
    """ "; pass A x, or B y" with each option written by name()."""
    if not remedies:
        return ""
    return "; pass " + ", or ".join(
        f"{name(option)} {phrase}".rstrip() for option, phrase in remedies
    )


class UsageError(ConverterError):
    """A request that makes no sense (options that contradict each other, a missing input)."""


class OptionError(UsageError):
    """One option's value makes no sense.

    option: its name as in the job's options value (ExportOptions.opset: "opset"); problem: what
    is wrong with the value, a phrase that reads after the name ("9: this tool exports opsets
    11 to 25"). The library's message is "opset 9: ..."; a CLI puts its flag in front instead.
    """

    def __init__(
        self, option: str, problem: str, *, remedies: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.option, self.problem = option, problem
        super().__init__(f"{option} {problem}", remedies=remedies)


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
    """Refusing to overwrite an existing file (or the input) without being told to replace it."""


class ReplaceRefusedError(OutputExistsError):
    """An output is already there and the job was not told to replace it (its force option)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, remedies=[("force", "to replace it")])


class OnnxModelError(ConverterError):
    """An ONNX file is unreadable, malformed, or does not fit the expected contract."""


class ProviderError(ConverterError):
    """A requested execution device (e.g. CUDA) is not really available."""


class DatasetError(ConverterError):
    """A Human3.6M root, annotation file or image set is missing or malformed."""


class CheckFailedError(ConverterError):
    """A numerical check ran and failed (parity, backend delta). Exit code 1."""

    exit_code = 1
