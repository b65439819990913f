"""The progress callback handed to slow library work: the caller's own, or a silent one."""

from __future__ import annotations

import pytest

from converter.core.progress import progress_callback


def test_a_given_callable_is_the_one_reported_to() -> None:
    seen = []

    def report(stage: str, done: int, total: int | None) -> None:
        seen.append((stage, done, total))

    progress_callback(report)("eval", 3, 10)
    assert seen == [("eval", 3, 10)]


@pytest.mark.parametrize("progress", [None, True, False])
def test_no_callable_gives_one_that_shows_nothing(progress, capfd) -> None:
    report = progress_callback(progress)
    assert report is not print and report("eval", 3, None) is None
    assert capfd.readouterr() == ("", "")  # nothing on stdout or stderr, Python or native
