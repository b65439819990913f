"""Graphs that could run without end, or run unchecked code, are refused before any runtime sees
them, by every command that runs a graph (tests/runtimes/hostile_graphs.py makes them)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from hostile_graphs import (
    constant_without_data,
    custom_domain,
    dimension_name_not_utf8,
    endless_loop,
    flat_coords,
    local_function,
    loop_after_coords,
    nan_coords,
    no_coords,
    operator_not_utf8,
    resize_mode_not_utf8,
)

from converter.checkpoints import released as released_module
from converter.checkpoints.released import load_released
from converter.core.errors import OnnxModelError
from converter.h36m.photos import photo_paths
from converter.runtimes.graph_bounds import unbounded_constructs
from converter.runtimes.sessions import open_onnx_session, open_session

RELEASED = str(Path(released_module.__file__).with_name("released_xs.safetensors"))


@pytest.fixture(scope="module")
def released(onnx_cache) -> Path:
    return onnx_cache.exported(load_released())[0]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (endless_loop, "control flow (Loop node 'forever')"),
        (custom_domain, "an operator from another domain (evil.ops.Exfiltrate)"),
        (local_function, "1 local function(s)"),
    ],
)
def test_sessions_refuse_unbounded_graphs(tmp_path: Path, make, problem: str) -> None:
    path = make(tmp_path)
    with pytest.raises(OnnxModelError, match="refused before it runs") as refused:
        open_onnx_session(path, "cpu")
    assert problem in str(refused.value)


def test_a_constant_without_data_is_one_line(released: Path, tmp_path: Path, cli) -> None:
    """Reading the graph's facts decoded the Constant: a ValueError traceback, before the runtime
    could refuse it."""
    from converter.prediction.predictor import PosePredictor

    graph = constant_without_data(released, tmp_path)
    with pytest.raises(OnnxModelError) as refused:
        PosePredictor(graph, device="cpu")
    assert str(graph) in str(refused.value) and "\n" not in str(refused.value)
    done = cli("predict", graph, photo_paths()[0])
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.output


def test_an_operator_name_that_is_not_utf8_is_one_line(released: Path, tmp_path: Path, cli) -> None:
    from converter.prediction.predictor import PosePredictor

    graph = operator_not_utf8(released, tmp_path)
    with pytest.raises(OnnxModelError) as refused:
        PosePredictor(graph, device="cpu")
    message = str(refused.value)
    assert message == f"{graph}: not a readable ONNX model (an operator is not UTF-8 text)"
    done = cli("verify", graph, "--checkpoint", RELEASED)
    assert done.exit_code == 2 and done.stderr.strip() == f"error: {message}", done.output


def test_a_resize_mode_that_is_not_utf8_is_one_line(released: Path, tmp_path: Path) -> None:
    from converter.prediction.predictor import PosePredictor

    graph = resize_mode_not_utf8(released, tmp_path)
    with pytest.raises(OnnxModelError) as refused:
        PosePredictor(graph, device="cpu")
    message = str(refused.value)  # the contract reads the mode as text; onnxruntime refuses
    assert message.startswith(f"{graph}: onnxruntime cannot load it (") and "\n" not in message


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "opencv"])
def test_a_dimension_name_that_is_not_utf8_is_one_line(released, tmp_path, runtime) -> None:
    graph = dimension_name_not_utf8(released, tmp_path)
    with pytest.raises(OnnxModelError) as refused:
        open_session(graph, runtime, "cpu")
    expected = "not a readable ONNX model (a dimension's name is not UTF-8 text)"
    assert str(refused.value) == f"{graph}: {expected}"


def test_exports_hold_nothing_unbounded(released: Path) -> None:
    assert unbounded_constructs(onnx.load(str(released))) == []


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "{graph}", "--checkpoint", RELEASED],
        ["predict", "{graph}", str(photo_paths()[0])],
        ["bench", "{graph}", "--checkpoint", RELEASED, "--runs", "1"],
    ],
)
def test_a_loop_after_coords_is_refused_by_every_command(
    released: Path, tmp_path: Path, cli, command: list[str]
) -> None:
    """Everything else about the graph fits (metadata, variant, shapes): before the bound, each of
    these ran it and never returned."""
    graph = loop_after_coords(released, tmp_path)
    done = cli(*(graph if part == "{graph}" else part for part in command))
    assert done.exit_code == 2, done.output
    (line,) = done.stderr.splitlines()[-1:]
    assert "control flow (Loop node 'forever')" in line and "refused before it runs" in line


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (nan_coords, "NaN or infinite value(s) on real inputs"),
        (flat_coords, "'coords' came out [2, 54]"),
        (no_coords, "has no 'coords' output (outputs: joints)"),
    ],
)
def test_eval_refuses_graphs_whose_coords_are_not_joints(
    released: Path, tmp_path: Path, synthetic_set, cli, make, expected: str
) -> None:
    """Each used to end in NaN figures with exit 0, or a traceback."""
    data = synthetic_set("reference")
    graph = make(released, tmp_path)
    result = cli("eval", "--data", data, "--onnx", graph, "--backend", "onnx",
                  "--limit", 2, "--batch", 2, "--no-flip", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert expected in line
