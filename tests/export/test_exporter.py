"""export_onnx: the graph fits the variant, carries its metadata, and matches PyTorch."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from converter.checkpoints.canonical import build_loaded_model
from converter.core.errors import CheckFailedError, OutputExistsError, UsageError
from converter.core.variants import get_variant
from converter.export import exporter as export_module
from converter.export import options as options_module
from converter.export.exporter import ExportReport, export_onnx
from converter.export.options import ExportOptions
from converter.graphs.metadata import OnnxMetadata, read_onnx_metadata
from converter.h36m.preprocess import normalize_images, seeded_images
from converter.runtimes.sessions import open_onnx_session


@pytest.fixture(scope="module")
def xs(onnx_cache) -> tuple[Path, ExportReport]:
    return onnx_cache.exported(onnx_cache.release_checkpoint("XS"))


@pytest.fixture(scope="module")
def xs_dynamo(onnx_cache) -> tuple[Path, ExportReport]:
    """The other exporter, with onnxsim: torch.export and the simplifier stay covered."""
    ckpt = onnx_cache.release_checkpoint("XS")
    return onnx_cache.exported(ckpt, exporter="dynamo", simplify=True)


@pytest.fixture(scope="module")
def xs_torchscript(onnx_cache) -> tuple[Path, ExportReport]:
    ckpt = onnx_cache.release_checkpoint("XS")
    return onnx_cache.exported(ckpt, exporter="torchscript", heatmaps=True, batch=2)


def _inferred(path: Path) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)


def _dims(value: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _shape_of(model: onnx.ModelProto, name: str) -> list[object]:
    for value in (*model.graph.value_info, *model.graph.output):
        if value.name == name:
            return _dims(value)
    raise KeyError(name)


def _assert_fits(path: Path, variant: str, upsampling: int, depth_dim: int, hw: int) -> None:
    """Read the file itself (not the report) and check it against the variant's facts."""
    onnx.checker.check_model(str(path), full_check=True)
    model = _inferred(path)
    nodes = model.graph.node
    ops = [n.op_type for n in nodes]
    assert "Range" not in ops
    resizes = [n for n in nodes if n.op_type == "Resize"]
    assert len(resizes) == upsampling, f"{variant}: Resize count"
    for node in resizes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["coordinate_transformation_mode"] == b"align_corners"
        assert attrs["mode"] == b"linear"
    final = [n for n in nodes if n.op_type == "Conv"][-1]
    weight = next(t for t in model.graph.initializer if t.name == final.input[1])
    assert weight.dims[0] == 18 * depth_dim
    heatmap = final.output[0]
    readers = [n for n in nodes if heatmap in n.input]
    if [n.op_type for n in readers] == ["Resize"]:  # the final conv moved before the last x2
        assert _shape_of(model, heatmap)[1:] == [18 * depth_dim, hw // 2, hw // 2]
        heatmap = readers[0].output[0]
    assert _shape_of(model, heatmap)[1:] == [18 * depth_dim, hw, hw]


def test_xs_graph_fits_the_variant(xs) -> None:
    path, _ = xs
    _assert_fits(path, "XS", upsampling=2, depth_dim=32, hw=32)


def test_xs_graph_contract(xs) -> None:
    path, report = xs
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    (image,) = model.graph.input
    assert image.name == "image"
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = _dims(image)
    assert isinstance(dims[0], str) and dims[1:] == [3, 256, 256]  # dynamic batch
    assert [o.name for o in model.graph.output] == ["coords"]
    assert _dims(model.graph.output[0])[1:] == [18, 3]
    assert report.graph.dynamic_batch
    assert report.exporter == "torchscript" and report.opset == 18  # the default while it exists
    assert not report.simplified and report.simplify_error is None  # onnxsim only when asked


def _operators(path: Path) -> collections.Counter[str]:
    nodes = onnx.load(str(path)).graph.node
    return collections.Counter(n.op_type for n in nodes if n.op_type != "Constant")


def test_dynamo_and_onnxsim_write_the_same_operators(xs, xs_dynamo) -> None:
    """Both exporters (the second one simplified) give the same graph, shape constants aside."""
    path, report = xs_dynamo
    _assert_fits(path, "XS", upsampling=2, depth_dim=32, hw=32)
    assert report.passed and (report.exporter, report.opset) == ("dynamo", 18)
    assert report.simplified and report.simplify_error is None
    meta = read_onnx_metadata(path)
    assert (meta.exporter, meta.simplified) == ("dynamo", True)
    assert _operators(path) == _operators(xs[0])
    assert _operators(path)["Conv"] == 1 + 3 + 12 * 3 + 3 * 2 + 1  # stem, downs, blocks, head
    assert not [n for n in onnx.load(str(path)).graph.node if n.op_type == "Constant"]


def test_xs_metadata_round_trip(onnx_cache, xs) -> None:
    path, report = xs
    ckpt = onnx_cache.release_checkpoint("XS")
    meta = read_onnx_metadata(path)
    assert isinstance(meta, OnnxMetadata)
    assert meta == report.metadata
    assert (meta.variant, meta.depth_dim, meta.heatmap_hw) == ("XS", 32, (32, 32))
    assert meta.joint_names[0] == "Pelvis" and len(meta.joint_names) == 18
    assert meta.flip_pairs[0] == (1, 4) and meta.root_index == 0
    assert meta.input_name == "image" and meta.input_hw == (256, 256)
    assert meta.input_layout.startswith("NCHW, RGB")
    assert meta.pixel_mean == (0.485, 0.456, 0.406) and meta.pixel_std == (0.229, 0.224, 0.225)
    assert "no division by 255" in meta.normalization
    assert meta.bbox_3d_shape_mm == (2000, 2000, 2000)
    assert "heatmap columns" in meta.coordinate_units
    assert meta.weights == "trained"
    assert meta.weights_sha256 == ckpt.metadata.weights_sha256
    assert meta.source_sha256 == ckpt.metadata.source_sha256 != ""
    assert meta.torch_version == torch.__version__ and meta.onnx_version == onnx.__version__
    assert (meta.opset, meta.exporter, meta.simplified, meta.precision) == (
        18,
        "torchscript",
        False,
        "fp32",
    )
    assert meta.batch == "dynamic" and meta.outputs == ("coords",)
    assert meta.checkpoint["epoch"] == 68 and meta.checkpoint["depths"] == [2, 2, 6, 2]
    # What a consumer sees through onnxruntime: plain keys, every value JSON.
    session = open_onnx_session(path, "cpu")
    modelmeta = session._session.get_modelmeta()
    props = modelmeta.custom_metadata_map
    values = {key: json.loads(value) for key, value in props.items()}
    assert values["variant"] == "XS" and values["heatmap_width"] == 32
    assert values["flip_pairs"][0] == [1, 4] and values["simplified"] is False
    assert not [k for k in props if k.startswith(("onnxsim.", "checkpoint."))]
    assert not set(values["checkpoint"]) & set(values)  # no fact twice
    assert (modelmeta.producer_name, modelmeta.version) == ("cnp-convert", 2)


def test_xs_parity_in_report(xs) -> None:
    _, report = xs
    assert report.passed
    assert [p.batch for p in report.parity] == [1, 2]
    for parity in report.parity:
        coords = parity.output("coords")
        assert coords.error <= coords.limit and coords.worst_joint is not None
        assert coords.rule == "max(40 x floor, 2 x its max) + 0.0002"
    assert isinstance(report.seed, int) and f"seed {report.seed}" in "\n".join(report.lines())
    json.dumps(report.to_dict())  # JSON-ready
    assert report.lines()[0].startswith(f"wrote {report.path}")


def test_dynamic_batch_runs_at_other_sizes(onnx_cache, xs) -> None:
    path, _ = xs
    spec = onnx_cache.release_checkpoint("XS").spec
    session = open_onnx_session(path, "cpu")
    for batch in (3, 5):
        out = session.run(normalize_images(seeded_images(batch, 3), spec))
        assert out["coords"].shape == (batch, 18, 3)


def test_torchscript_fixed_batch_with_heatmaps(xs_torchscript) -> None:
    path, report = xs_torchscript
    _assert_fits(path, "XS", upsampling=2, depth_dim=32, hw=32)
    model = onnx.load(str(path))
    assert [_dims(o) for o in model.graph.output] == [[2, 18, 3], [2, 576, 32, 32]]
    assert _dims(model.graph.input[0]) == [2, 3, 256, 256]
    meta = read_onnx_metadata(model)
    assert meta.exporter == "torchscript" and meta.batch == "2"
    assert meta.outputs == ("coords", "heatmaps")
    assert [p.batch for p in report.parity] == [2]
    assert report.parity[0].output("heatmaps").passed


def test_l_graph_fits_and_matches(onnx_cache) -> None:
    path, report = onnx_cache.exported(onnx_cache.release_checkpoint("L"))
    _assert_fits(path, "L", upsampling=3, depth_dim=64, hw=64)
    # The floor is PyTorch fp32 with its soft-argmax divided by the mass: without that, the
    # softmax sum's rounding over 64^3 cells made it ~2e-3 (docs/flow.md, "Parity verdicts").
    coords = report.parity[0].output("coords")
    assert report.passed and 0 < coords.floor < 1e-3
    assert coords.allowance == 0 and "rounding bound" not in coords.rule  # coords come from a Div
    assert read_onnx_metadata(path).heatmap_hw == (64, 64)
    # Both head rewrites by default: the final conv runs at 32x32, its Resize gives 64x64.
    assert report.rewrites.applied == ("final_conv_before_upsample", "soft_argmax_moments")
    assert report.graph.final_conv_hw == (32, 32) and report.graph.heatmap_hw == (64, 64)
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert json.loads(props["rewrites"]) == list(report.rewrites.applied)
    # Independent of the report: ORT against the strictly loaded PyTorch model.
    ckpt = onnx_cache.release_checkpoint("L")
    x = normalize_images(seeded_images(2, 99), ckpt.spec)
    with torch.inference_mode():
        ref = build_loaded_model(ckpt)(torch.from_numpy(x)).numpy()
    got = open_onnx_session(path, "cpu").run(x)["coords"]
    assert np.abs(got - ref).max() < 2e-3


def test_parity_failure_leaves_no_file(onnx_cache, tmp_path: Path) -> None:
    ckpt = onnx_cache.release_checkpoint("XS")
    out = tmp_path / "strict.onnx"
    with pytest.raises(CheckFailedError, match="the verdict failed") as info:
        export_onnx(ckpt, out, ExportOptions(exporter="torchscript", atol={"coords": 1e-12}))
    assert info.value.exit_code == 1
    assert "no file written" in str(info.value)
    assert not info.value.report.passed
    assert list(tmp_path.iterdir()) == []  # no output, no temp file


def test_failed_simplification_keeps_the_graph(onnx_cache, tmp_path: Path, monkeypatch) -> None:
    import onnxsim

    def broken(model):
        raise RuntimeError("simulated onnxsim crash\nsecond line")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    out = tmp_path / "unsimplified.onnx"
    report = export_onnx(onnx_cache.release_checkpoint("XS"), out, ExportOptions(simplify=True))
    assert out.exists() and report.passed
    assert not report.simplified
    assert report.simplify_error == "onnxsim failed (RuntimeError: simulated onnxsim crash)"
    assert read_onnx_metadata(out).simplified is False


def test_existing_output_needs_force(onnx_cache, tmp_path: Path) -> None:
    out = tmp_path / "exists.onnx"
    out.write_bytes(b"keep me")
    ckpt = onnx_cache.release_checkpoint("XS")
    with pytest.raises(OutputExistsError, match="pass force to replace it"):
        export_onnx(ckpt, out, ExportOptions(exporter="torchscript"))
    assert out.read_bytes() == b"keep me"
    report = export_onnx(ckpt, out, ExportOptions(exporter="torchscript", force=True))
    assert report.passed
    assert read_onnx_metadata(out).exporter == "torchscript"


def test_never_overwrites_the_checkpoint(onnx_cache, release_file) -> None:
    ckpt = onnx_cache.release_checkpoint("XS")
    source = release_file("XS")
    before = source.stat().st_size
    with pytest.raises(OutputExistsError, match="input"):
        export_onnx(ckpt, source, ExportOptions(force=True))
    assert source.stat().st_size == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch": "many"}, "^batch must be"),
        ({"batch": 0}, "^batch must be"),
        ({"exporter": "tf2onnx"}, "^exporter must be"),
        ({"opset": 9}, "opset"),
    ],
)
def test_bad_options(onnx_cache, tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        export_onnx(
            onnx_cache.release_checkpoint("XS"), tmp_path / "x.onnx", ExportOptions(**options)
        )
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    ("asked", "opset", "torchscript_shipped", "expected"),
    [
        (None, 18, True, "torchscript"),  # the default while torch ships it
        (None, 11, True, "torchscript"),
        (None, 20, True, "torchscript"),  # the newest it writes
        (None, 21, True, "dynamo"),  # just past it
        (None, 18, False, "dynamo"),  # a torch without it
        ("dynamo", 18, True, "dynamo"),
        ("torchscript", 13, True, "torchscript"),
    ],
)
def test_resolve_exporter(asked, opset, torchscript_shipped, expected, monkeypatch) -> None:
    monkeypatch.setattr(options_module, "torchscript_available", lambda: torchscript_shipped)
    assert options_module.resolve_exporter(asked, opset) == expected


@pytest.mark.parametrize(
    ("asked", "opset", "torchscript_shipped", "message"),
    [
        ("dynamo", 17, True, "dynamo exporter writes opset 18 or newer"),
        ("torchscript", 21, True, "torchscript exporter writes opset 20 or older"),
        ("torchscript", 18, False, "no longer ships it"),
        (None, 17, False, "only the TorchScript exporter writes opsets below 18"),
        (None, 10, True, "exports opsets 11 to"),
    ],
)
def test_resolve_exporter_refuses(asked, opset, torchscript_shipped, message, monkeypatch) -> None:
    monkeypatch.setattr(options_module, "torchscript_available", lambda: torchscript_shipped)
    with pytest.raises(UsageError, match=message):
        options_module.resolve_exporter(asked, opset)


def test_this_torch_ships_the_torchscript_exporter() -> None:
    """The requirement range admits torch 2.13, which still has it (CI would notice otherwise)."""
    assert options_module.torchscript_available()


def test_exporter_failure_is_one_line(onnx_cache, tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("unsupported operator\ntraceback noise")

    monkeypatch.setattr(export_module, "trace_to_onnx", boom)
    with pytest.raises(Exception, match="exporter failed") as info:
        export_onnx(onnx_cache.release_checkpoint("XS"), tmp_path / "x.onnx")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


def test_declared_output_shapes_are_the_contract_and_must_agree(xs, tmp_path: Path) -> None:
    path, _ = xs
    session = open_onnx_session(path, "cpu")._session
    assert [o.shape for o in session.get_outputs()] == [["batch", 18, 3]]
    proto = onnx.load(str(path))
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 17  # one joint short
    with pytest.raises(CheckFailedError, match="fails the ONNX checker"):
        export_module._checked_facts(proto, tmp_path / "x.onnx", get_variant("XS"), ExportOptions())


def test_the_graph_and_its_ort_file_are_published_together(
    onnx_cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that appears at the graph's path while the .ort file is made refuses both: the
    .ort used to be published alone."""
    out = tmp_path / "m.onnx"
    real = export_module.save_ort_format

    def save_and_race(onnx_path, ort_path) -> None:
        real(onnx_path, ort_path)
        out.write_bytes(b"another process's file")

    monkeypatch.setattr(export_module, "save_ort_format", save_and_race)
    with pytest.raises(OutputExistsError, match="appeared while it was being written"):
        export_onnx(
            onnx_cache.seeded_checkpoint("XS", 0), out, ExportOptions(ort_format=True, seed=1)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert out.read_bytes() == b"another process's file"


def test_the_default_name_says_the_variant_the_weights_and_the_precision(onnx_cache) -> None:
    # A fabricated release reads as released weights; the seeded stand-in is "random" weights:
    # the name says so, and a precision other than fp32.
    release, seeded = onnx_cache.release_checkpoint("XS"), onnx_cache.seeded_checkpoint("XS", 0)
    assert export_module.default_onnx_name(release, "fp32") == "ConvNeXtPose_XS.onnx"
    assert export_module.default_onnx_name(release, "int8") == "ConvNeXtPose_XS_int8.onnx"
    assert export_module.default_onnx_name(seeded, "fp16") == "ConvNeXtPose_XS_random_fp16.onnx"
