"""Names in an ONNX graph that are not UTF-8: each kind of field, found wherever it sits, in a
tiny graph whose serialized bytes have one marker's first byte turned into 0x80."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from converter.core.errors import OnnxModelError
from converter.core.graph_text import check_graph_text, first_undecoded_name


def _model() -> onnx.ModelProto:
    """One node with a marker (four capitals) in every text field; each marker a test edits is
    unique in the file (checked in _undecoded)."""
    node = helper.make_node("OPXX", ["INPT"], ["OUTP"], name="NNAM", domain="NDOM", ATTR=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("INPT", TensorProto.FLOAT, ["DIMP", 3])],
        [helper.make_tensor_value_info("OUTP", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("INIT", TensorProto.FLOAT, [1], [0.0])],
        value_info=[helper.make_tensor_value_info("VINF", TensorProto.FLOAT, [2])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ODOM", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def _undecoded(marker: bytes) -> onnx.ModelProto:
    data = _model().SerializeToString()
    assert data.count(marker) == 1
    at = data.index(marker)
    return onnx.ModelProto.FromString(data[:at] + b"\x80" + data[at + 1 :])


@pytest.mark.parametrize(
    ("marker", "what"),
    [
        (b"ODOM", "an opset domain"),
        (b"OPXX", "an operator"),
        (b"NDOM", "an operator domain"),
        (b"NNAM", "a node name"),
        (b"ATTR", "an attribute name"),
        (b"DIMP", "a dimension's name"),
        (b"VINF", "a tensor name"),
        (b"INIT", "a tensor name"),
    ],
)
def test_each_kind_of_name_is_found(marker: bytes, what: str) -> None:
    assert first_undecoded_name(_undecoded(marker)) == what


def test_node_tensor_names_are_read() -> None:
    # INPT is also the graph input's name; a node output name appears once.
    model = _model()
    model.graph.node[0].output[0] = "NOUT"
    data = model.SerializeToString()
    at = data.index(b"NOUT")
    bad = onnx.ModelProto.FromString(data[:at] + b"\x80" + data[at + 1 :])
    assert first_undecoded_name(bad) == "a tensor name"


def test_a_graph_of_text_has_no_undecoded_name() -> None:
    assert first_undecoded_name(_model()) is None
    check_graph_text(Path("m.onnx"), _model())


def test_the_refusal_is_one_line_naming_the_file_and_the_field() -> None:
    with pytest.raises(OnnxModelError) as refused:
        check_graph_text(Path("m.onnx"), _undecoded(b"NNAM"))
    assert str(refused.value) == "m.onnx: not a readable ONNX model (a node name is not UTF-8 text)"
