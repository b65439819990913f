"""Our metadata_props: every value JSON, no duplicated or empty keys, old graphs still read."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from converter import __version__
from converter.core.errors import OnnxModelError
from converter.core.variants import get_variant
from converter.graphs.metadata import OnnxMetadata, read_onnx_metadata, write_onnx_metadata

# Written by hand the way cnp-convert 0.1.0 wrote a random-weights XS graph (format 1): bare
# strings, numbers as text, comma lists under checkpoint.*, onnxsim's keys passed through.
LEGACY_PROPS = {
    "onnxsim.skip_optimizers": "",
    "onnxsim.constant_folding": "true",
    "onnxsim.removed_nodes": "",
    "format": "cnp-onnx/1",
    "variant": "XS",
    "depth_dim": "32",
    "heatmap_height": "32",
    "heatmap_width": "32",
    "joint_num": "18",
    "joint_names": json.dumps(["Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee",
                               "L_Ankle", "Torso", "Neck", "Nose", "Head", "L_Shoulder",
                               "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
                               "Thorax"]),
    "flip_pairs": "[[1, 4], [2, 5], [3, 6], [14, 11], [15, 12], [16, 13]]",
    "root_index": "0",
    "input_name": "image",
    "input_height": "256",
    "input_width": "256",
    "input_layout": "NCHW, RGB channel order, float32",
    "pixel_mean": "[0.485, 0.456, 0.406]",
    "pixel_std": "[0.229, 0.224, 0.225]",
    "normalization": "input = (RGB in 0..255 - mean) / std per channel; no division by 255",
    "bbox_3d_shape_mm": "[2000, 2000, 2000]",
    "coordinate_units": "coords (N, J, 3) = (x, y, z): x in heatmap columns 0..W-1",
    "outputs": '["coords"]',
    "batch": "dynamic",
    "source_sha256": "",
    "weights_sha256": "19d05207dfc7d705a9d35075e62dc690e05fb634ae956860d1bce828f2b3222c",
    "weights": "random",
    "converter_version": "0.1.0",
    "torch_version": "2.13.0+cpu",
    "onnx_version": "1.23.2",
    "opset": "18",
    "exporter": "dynamo",
    "simplified": "true",
    "precision": "fp32",
    "checkpoint.format": "cnp-canonical/1",
    "checkpoint.variant": "XS",
    "checkpoint.depths": "2,2,6,2",
    "checkpoint.epoch": "",
    "checkpoint.source_name": "random(seed=0)",
    "checkpoint.weights": "random",
    "rewrites": '["soft_argmax_moments"]',
}  # fmt: skip

CHECKPOINT_FACTS = {
    "variant": "XS", "depths": (2, 2, 6, 2), "dims": (40, 80, 160, 320), "head_width": 128,
    "depth_dim": 32, "joint_num": 18, "heatmap_hw": (32, 32), "upsample": (True, True, False),
    "head_naming": "official", "epoch": 68, "source_name": "ConvNeXtPose_XS.tar",
    "source_sha256": "ab" * 32, "source_size": 14_000_000, "weights_sha256": "cd" * 32,
    "keys_renamed": 0, "prefixes_stripped": ("module.",), "container": "torch-zip",
    "weights": "trained", "evidence": "stem 40 ch", "converter_version": __version__,
}  # fmt: skip


def _graph(props: dict[str, str] | None = None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    w = numpy_helper.from_array(np.ones(1, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.producer_name, model.producer_version = "pytorch", "2.13.0+cpu"
    for key, value in (props or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _metadata(**changes: object) -> OnnxMetadata:
    facts = dict(
        outputs=("coords", "heatmaps"), batch="2", source_sha256="ab" * 32,
        weights_sha256="cd" * 32, weights="trained", converter_version=__version__,
        torch_version="2.13.0+cpu", onnx_version=onnx.__version__, opset=18, exporter="dynamo",
        simplified=False, simplify_error="onnxsim is not installed (pip install onnxsim)",
        precision="int8", checkpoint=CHECKPOINT_FACTS,
    )  # fmt: skip
    facts.update(changes)
    return OnnxMetadata.for_spec(get_variant("XS"), **facts)


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def test_graph_written_in_the_old_format_is_still_read() -> None:
    meta = read_onnx_metadata(_graph(LEGACY_PROPS))
    assert meta is not None and meta.format == "cnp-onnx/1"
    assert (meta.variant, meta.depth_dim, meta.heatmap_hw, meta.joint_num) == (
        "XS",
        32,
        (32, 32),
        18,
    )
    assert meta.joint_names[17] == "Thorax" and meta.flip_pairs[3] == (14, 11)
    assert meta.input_hw == (256, 256) and meta.pixel_std == (0.229, 0.224, 0.225)
    assert meta.bbox_3d_shape_mm == (2000, 2000, 2000) and meta.outputs == ("coords",)
    assert (meta.batch, meta.opset, meta.simplified, meta.precision) == (
        "dynamic",
        18,
        True,
        "fp32",
    )
    assert meta.weights == "random" and meta.source_sha256 == ""
    assert meta.simplify_error is None
    assert meta.checkpoint["depths"] == "2,2,6,2" and meta.checkpoint["epoch"] == ""


def test_rewriting_an_old_graph_leaves_only_the_new_format() -> None:
    model = write_onnx_metadata(_graph(LEGACY_PROPS), _metadata())
    props = _props(model)
    assert not [k for k in props if k.startswith(("onnxsim.", "checkpoint."))]
    assert props["rewrites"] == '["soft_argmax_moments"]'  # another key, kept
    assert read_onnx_metadata(model) == _metadata()


def test_every_value_is_json_with_native_types() -> None:
    foreign = {"onnxsim.removed_nodes": "", "onnx.infer": "onnxruntime.quant", "tool.x": "[1, 2]"}
    props = _props(write_onnx_metadata(_graph(foreign), _metadata()))
    ours = {k: json.loads(v) for k, v in props.items()}
    assert ours.pop("tool.x") == [1, 2]  # another tool's JSON value: passed through
    assert "onnx.infer" not in props  # bare text (onnxruntime's quantizer): dropped
    assert ours["format"] == "cnp-onnx/2" and ours["variant"] == "XS"
    assert ours["depth_dim"] == 32 and ours["heatmap_height"] == 32 and ours["opset"] == 18
    assert ours["batch"] == 2 and ours["simplified"] is False
    assert ours["simplify_error"] == "onnxsim is not installed (pip install onnxsim)"
    assert ours["flip_pairs"][0] == [1, 4] and ours["pixel_mean"] == [0.485, 0.456, 0.406]
    assert "channel = joint*D + depth_bin" in ours["heatmaps_layout"]
    assert not [k for k in props if k.startswith(("onnxsim.", "checkpoint."))]
    assert "" not in props.values()


def test_checkpoint_facts_are_one_object_without_top_level_duplicates() -> None:
    props = _props(write_onnx_metadata(_graph(), _metadata()))
    checkpoint = json.loads(props["checkpoint"])
    assert checkpoint == {
        "depths": [2, 2, 6, 2], "dims": [40, 80, 160, 320], "head_width": 128,
        "upsample": [True, True, False], "head_naming": "official", "epoch": 68,
        "source_name": "ConvNeXtPose_XS.tar", "source_size": 14_000_000, "keys_renamed": 0,
        "prefixes_stripped": ["module."], "container": "torch-zip", "evidence": "stem 40 ch",
    }  # fmt: skip


def test_producer_is_cnp_convert_and_model_version_the_schema() -> None:
    model = write_onnx_metadata(_graph(), _metadata())
    assert model.producer_name == "cnp-convert" and model.producer_version == __version__
    assert model.model_version == 2
    # The fields survive serialization.
    again = onnx.load_from_string(model.SerializeToString())
    assert (again.producer_name, again.model_version) == ("cnp-convert", 2)


def test_dynamic_batch_is_a_json_string() -> None:
    props = _props(write_onnx_metadata(_graph(), _metadata(batch="dynamic")))
    assert json.loads(props["batch"]) == "dynamic"
    assert read_onnx_metadata(_graph(props)).batch == "dynamic"


def test_other_tools_keys_added_later_do_not_disturb_reading() -> None:
    props = _props(write_onnx_metadata(_graph(), _metadata()))
    props["onnx.infer"] = "onnxruntime.quant"  # written after us: bare text, not ours
    assert read_onnx_metadata(_graph(props)) == _metadata()


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("precision", "int8", "Expecting value"),  # a bare word is not JSON
        ("depth_dim", "true", "depth_dim is 'True', not a JSON int"),
        ("depth_dim", '"32"', "depth_dim is '32', not a JSON int"),
        ("simplified", "1", "simplified is '1', not a JSON bool"),
        ("variant", "7", "variant is '7', not a JSON str"),
        ("joint_names", '"Pelvis"', "not a JSON list"),
        ("checkpoint", "[1]", "checkpoint is not a JSON object"),
        ("pixel_mean", "[1, 2]", "expected a list of 3 values"),
    ],
)
def test_values_of_the_wrong_json_type_are_one_line_errors(
    key: str, value: str, reason: str
) -> None:
    props = _props(write_onnx_metadata(_graph(), _metadata()))
    props[key] = value
    with pytest.raises(OnnxModelError, match="metadata is incomplete or malformed") as info:
        read_onnx_metadata(_graph(props))
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_a_newer_format_is_refused_and_a_foreign_one_ignored() -> None:
    props = _props(write_onnx_metadata(_graph(), _metadata()))
    with pytest.raises(OnnxModelError, match="'cnp-onnx/3' is not 'cnp-onnx/2'"):
        read_onnx_metadata(_graph({**props, "format": '"cnp-onnx/3"'}))
    assert read_onnx_metadata(_graph({**props, "format": '"other/1"'})) is None
    assert read_onnx_metadata(_graph({**props, "format": "{"})) is None


def test_metadata_that_is_not_utf8_is_one_line(tmp_path) -> None:
    """One byte of a graph's metadata changed to 0x80 made protobuf hand back bytes, and a
    TypeError traceback (found by the long fuzz run)."""
    data = write_onnx_metadata(_graph(), _metadata()).SerializeToString()
    at = data.index(b"cnp-onnx/2")
    path = tmp_path / "bad_metadata.onnx"
    path.write_bytes(data[:at] + b"\x80" + data[at + 1 :])
    with pytest.raises(OnnxModelError) as refused:
        read_onnx_metadata(path)
    assert str(refused.value).startswith(str(path)) and "is not UTF-8 text" in str(refused.value)
