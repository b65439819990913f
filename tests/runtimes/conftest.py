"""The command line run in the test's own process, checked as a user's terminal would be."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from converter.cli.main import app


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """cli(*args) -> CliRunner's result. In a process of its own, what a runtime writes below
    Python (onnxruntime's log) and Python's warnings would reach the terminal beside the tool's
    one line: here neither may appear. A graph that ran where it should have been refused is
    stopped by the run time limit (runtimes.watched): the test fails instead of hanging."""

    def invoke(*args: object) -> Result:
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = CliRunner().invoke(app, [str(a) for a in args])
        native = capfd.readouterr()
        assert native.out == native.err == "", native
        assert not caught, [str(w.message) for w in caught]
        return result

    return invoke
