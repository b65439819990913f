"""converter.verdicts.verify on a hand-built ONNX graph and a closed-form tiny model.

The graph computes coords = the first pixel x SCALE + joint index, beside a dangling branch with
the shapes ConvNeXtPose-XS shows to the graph contract (a 40-channel stem, two Resize nodes, a
576-channel final conv). The model the verdict compares against is a tiny module computing the
same (build_loaded_model is replaced), so one verify run takes a fraction of a second and the
expected verdicts follow from the graph's constants: this file is part of `just mutate`.
Export-made graphs and real weights are covered by test_verify.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from converter.checkpoints.canonical import CanonicalCheckpoint, CheckpointMetadata
from converter.checkpoints.reader import RawCheckpoint
from converter.core.errors import OnnxModelError, OptionError, UsageError, VariantMismatchError
from converter.core.variants import get_variant
from converter.graphs.metadata import OnnxMetadata, write_onnx_metadata
from converter.verdicts import verify
from converter.verdicts.judge import ParityFailedError
from converter.verdicts.verify import (
    MetadataMismatchError,
    VerifyOptions,
    VerifyReport,
    _batch_sizes,
    _checkpoint_label,
    _first_failure,
    check_variant_option,
    verify_onnx,
)

XS = get_variant("XS")
SCALE = (0.01, 0.02, 0.03)
SHA = "ab" * 32


class TinyPose(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(SCALE))

    def forward_heatmaps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        corner = image[:, :, 0, 0]  # one pixel: both backends round the same two operations
        joints = torch.arange(18, dtype=image.dtype)[None, :, None]
        return corner[:, None, :] * self.scale + joints, image[:, :1]

    forward_moments = forward_heatmaps  # no softmax sum to cancel

    def probabilities(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """One cell of mass 1 per joint: the softmax sum's bound is 6u x |c|, next to nothing."""
        return torch.ones((heatmaps.shape[0], 18, 1), dtype=heatmaps.dtype)


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch) -> None:
    monkeypatch.setattr(verify, "build_loaded_model", lambda ckpt: TinyPose())


def _checkpoint(weights: str = "random", raw: RawCheckpoint | None = None) -> CanonicalCheckpoint:
    metadata = CheckpointMetadata(
        variant="XS",
        depths=XS.depths,
        dims=XS.dims,
        head_width=XS.head_width,
        depth_dim=XS.depth_dim,
        joint_num=18,
        heatmap_hw=XS.heatmap_hw,
        upsample=XS.upsample,
        head_naming="official",
        epoch=None,
        source_name="tiny.pth",
        source_sha256="",
        source_size=0,
        weights_sha256=SHA,
        keys_renamed=0,
        prefixes_stripped=(),
        container="none",
        weights=weights,
        evidence="",
    )
    return CanonicalCheckpoint(XS, {}, metadata, None, raw)  # type: ignore[arg-type]


def _metadata(**changes: object) -> OnnxMetadata:
    meta = OnnxMetadata.for_spec(
        XS,
        outputs=("coords",),
        batch="dynamic",
        source_sha256="",
        weights_sha256=SHA,
        weights="random",
        converter_version="test",
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
        opset=17,
        exporter="hand",
        simplified=False,
    )
    return replace(meta, **changes)


def _graph(
    path: Path,
    *,
    z_scale: float = SCALE[2],
    batch: int | str = "N",
    side: int = 256,
    resizes: int = 2,
    half: bool = False,
    meta: OnnxMetadata | None = None,
    rank3: bool = False,
) -> Path:
    shape = [batch, 3, side] if rank3 else [batch, 3, side, side]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    coords = helper.make_tensor_value_info("coords", TensorProto.FLOAT, [batch, 18, 3])
    inits = [
        numpy_helper.from_array(np.array([SCALE[0], SCALE[1], z_scale], np.float32), "scale"),
        numpy_helper.from_array(np.arange(18, dtype=np.float32).reshape(18, 1), "joints"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "start"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "end"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "hw"),
        numpy_helper.from_array(np.array([-1, 1, 3], np.int64), "shape"),
        numpy_helper.from_array(np.zeros((40, 3, 32, 32), np.float32), "w_stem"),
        numpy_helper.from_array(np.zeros((576, 40, 1, 1), np.float32), "w_final"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Slice", ["image", "start", "end", "hw"], ["corner"]),
        helper.make_node("Reshape", ["corner", "shape"], ["corner3"]),
        helper.make_node("Mul", ["corner3", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "joints"], ["coords32" if half else "coords"]),
        helper.make_node("Conv", ["image", "w_stem"], ["stem"], strides=[32, 32]),
    ]
    if half:
        nodes += [
            helper.make_node("Cast", ["coords32"], ["coords16"], to=TensorProto.FLOAT16),
            helper.make_node("Cast", ["coords16"], ["coords"], to=TensorProto.FLOAT),
        ]
    previous = "stem"
    for i in range(resizes):
        nodes.append(
            helper.make_node("Resize", [previous, "", "scales"], [f"up{i}"], mode="linear")
        )
        previous = f"up{i}"
    nodes.append(helper.make_node("Conv", [previous, "w_final"], ["maps"]))
    graph = helper.make_graph(nodes, "tiny", [image], [coords], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        write_onnx_metadata(model, meta)
    onnx.save(model, str(path))
    return path


def _run(path: Path, **options: object):
    options.setdefault("samples", 1)
    options.setdefault("batch", (1,))
    options.setdefault("seed", 5)
    options.setdefault("device", "cpu")
    return verify_onnx(path, options.pop("ckpt", _checkpoint()), VerifyOptions(**options))  # type: ignore[arg-type]


def _refused(exc_type: type[Exception], path: Path, **options: object) -> str:
    with pytest.raises(exc_type) as info:
        _run(path, **options)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the verdict ---------------------------------------------------------------------------------


def test_a_graph_computing_the_same_passes(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    report = _run(path, batch=(1, 2))
    assert report.passed and len(report.results) == 2 and report.pose == ()
    assert (report.variant, report.checkpoint, report.weights, report.weights_sha256) == (
        "XS",
        "tiny.pth",
        "random",
        SHA,
    )
    assert (report.onnx_device, report.providers, report.torch_device, report.device_note) == (
        "cpu",
        ("CPUExecutionProvider",),
        "cpu",
        None,
    )
    assert (report.samples, report.crops, report.batches, report.seed) == (1, 4, (1, 2), 5)
    assert (report.precision, report.graph_precision, report.runtime) == (
        "fp32",
        "fp32",
        "onnxruntime",
    )
    assert report.execution_precision is None and report.metadata_present
    assert (
        report.limits
        == {"coords": "max(40 x floor, 2 x its max) + 0.0002 + the softmax sums' rounding bound"}
        and report.warnings == ()
    )
    assert [r.samples for r in report.results] == [5, 6]  # 1 seeded image + 4 crops, cyclic
    assert 0 < report.seconds < 600  # a duration, not a clock reading
    assert report.results[0].outputs[0].joint_names == XS.joint_names  # judged per joint in mm
    values = report.to_dict()
    assert values == {
        "onnx": str(path),
        "variant": "XS",
        "checkpoint": "tiny.pth",
        "weights": "random",
        "weights_sha256": SHA,
        "metadata_present": True,
        "onnx_device": "cpu",
        "providers": ["CPUExecutionProvider"],
        "torch_device": "cpu",
        "device_note": None,
        "samples": 1,
        "crops": 4,
        "batches": [1, 2],
        "seed": 5,
        "precision": "fp32",
        "precision_source": "graph",
        "graph_precision": "fp32",
        "runtime": "onnxruntime",
        "execution_precision": None,
        "limits": {
            "coords": "max(40 x floor, 2 x its max) + 0.0002 + the softmax sums' rounding bound"
        },
        "results": [r.to_dict() for r in report.results],
        "pose_change": [],
        "warnings": [],
        "seconds": round(report.seconds, 3),
        "passed": True,
    }
    lines = report.lines()
    assert lines[0] == (
        f"verify {path} against tiny.pth: ConvNeXtPose-XS, weights random, sha256 {SHA[:12]}"
    )
    assert lines[1] == (
        "  onnxruntime on cpu (CPUExecutionProvider), PyTorch on cpu; 1 seeded images + 4 crops "
        "per batch size, seed 5; graph precision fp32 (read from its ops)"
    )
    assert lines[2].startswith("  batch 1: coords") and lines[3].startswith("  batch 2: coords")
    assert lines[-1].startswith("PASS in ") and lines[-1].endswith(" s") and len(lines) == 5


def test_a_graph_off_by_a_little_fails_with_its_report(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", z_scale=0.0301, meta=_metadata())
    with pytest.raises(ParityFailedError) as info:
        _run(path)
    report = info.value.report
    assert info.value.exit_code == 1 and not report.passed
    entry = report.results[0].outputs[0]
    assert str(info.value) == f"{path}: parity failed on cpu at batch 1: {entry.line()}"
    assert report.lines()[-1].startswith("FAIL in ")
    error = entry.error
    # The same seed draws the same inputs: an atol just above the error passes, just below fails.
    assert _run(path, atol=error * 1.001).passed
    with pytest.raises(ParityFailedError):
        _run(path, atol=error * 0.999)
    assert _run(path, atol=error * 1.001).limits == {"coords": f"atol {error * 1.001:g} (given)"}
    with pytest.raises(ParityFailedError) as other:
        _run(path, seed=6)  # another seed draws other inputs: another worst error
    assert other.value.report.results[0].outputs[0].error != error


def test_a_fixed_batch_graph_runs_its_own_batch(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", batch=2, meta=_metadata(batch="2"))
    assert _run(path, batch=None).batches == (2,)
    assert _refused(UsageError, path, batch=[1, 2]) == (
        "batch [1, 2]: the graph has a fixed batch of 2, nothing else runs"
    )


def test_half_precision_is_judged_by_the_pose_budget(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", half=True, meta=_metadata(precision="fp16"))
    report = _run(path, frames=2)
    assert report.precision == report.graph_precision == "fp16"
    # Two crop sets, judged apart: the seed's drawn figures, then the 56 real photo crops.
    assert report.results == () and len(report.pose) == 2 and report.pose[0].frames == 2
    assert report.pose[1].frames == 56 and "real photos" in report.pose[1].source
    assert (report.samples, report.crops, report.limits) == (0, 58, {"pose": "fp16 budget"})
    assert report.lines()[1].endswith(
        "PyTorch on cpu; 58 crops, seed 5; graph precision fp16 (read from its ops)"
    )
    assert report.lines()[2].startswith("  batch 1: fp16 pose change on 2 crops")
    assert report.lines()[3].startswith("  batch 1: fp16 pose change on 56 crops")
    assert report.to_dict()["pose_change"][0]["frames"] == 2
    assert _refused(UsageError, path, atol=0.1) == (
        f"atol applies to fp32 graphs; {path} is fp16, judged by its pose budget"
    )


# --- refusals before any numerics -----------------------------------------------------------------


def test_counts_and_seed_are_checked(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    assert _refused(UsageError, path, samples=0) == "samples must be from 1 to 4096, not 0"
    assert _refused(UsageError, path, samples=4097) == "samples must be from 1 to 4096, not 4097"
    assert _refused(UsageError, path, frames=0) == "frames must be from 1 to 4096, not 0"
    assert _refused(UsageError, path, frames=4097) == "frames must be from 1 to 4096, not 4097"
    assert _refused(UsageError, path, seed=-1).startswith("seed must be a non-negative")
    assert _refused(UsageError, path, runtime="tvm").startswith("runtime must be one of")
    assert _run(path, frames=4096).passed  # frames only matter to reduced-precision graphs
    # 4,096 samples would render ~3 GB of images: at the cap the call goes on and stops at the
    # missing file instead of refusing the count.
    missing = tmp_path / "missing.onnx"
    assert "missing.onnx" in _refused(OnnxModelError, missing, samples=4096)


def test_batch_sizes() -> None:
    assert _batch_sizes(None, None) == (1, 4)
    assert _batch_sizes(None, 3) == (3,)
    assert VerifyOptions(batch=[1, 256]).batch == (1, 256)  # just inside
    assert _batch_sizes((3, 3), 3) == (3, 3)
    with pytest.raises(UsageError, match="fixed batch of 3"):
        _batch_sizes((1, 3), 3)
    for bad in ([], [0], [257], [1, 0]):  # 257: just outside
        with pytest.raises(OptionError) as info:
            VerifyOptions(batch=bad)
        assert str(info.value) == f"batch sizes must be integers from 1 to 256, not {bad}"


def test_variant_option_against_checkpoint_and_graph(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    assert _refused(VariantMismatchError, path, variant="s") == (
        "variant S was asked for, but the checkpoint (tiny.pth) is XS"
    )
    assert _run(path, variant="xs").passed
    with pytest.raises(VariantMismatchError) as info:
        check_variant_option(path, _metadata(), "L")
    assert str(info.value) == f"{path}: variant L was asked for, but the graph's metadata says XS"
    check_variant_option(path, None, "L")  # no metadata: nothing to disagree with
    check_variant_option(path, _metadata(), None)


@pytest.mark.parametrize(
    ("changes", "what", "in_graph", "in_ckpt"),
    [
        ({"variant": "S"}, "variant", "S", "XS"),
        ({"depth_dim": 64}, "depth_dim", "64", "32"),
        ({"heatmap_hw": (64, 32)}, "heatmap size", "64x32", "32x32"),
    ],
)
def test_metadata_of_another_variant(tmp_path: Path, changes, what, in_graph, in_ckpt) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata(**changes))
    assert _refused(VariantMismatchError, path) == (
        f"{path}: the graph's {what} is {in_graph} but the checkpoint (tiny.pth) has {in_ckpt}"
    )


def test_metadata_of_other_weights(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata(weights_sha256="cd" * 32))
    assert _refused(MetadataMismatchError, path) == (
        f"{path}: exported from other weights (weights sha256 {'cd' * 8}… in the graph, "
        f"{'ab' * 8}… in tiny.pth)"
    )
    other = _graph(tmp_path / "t.onnx", meta=_metadata(weights="trained"))
    assert _run(other).warnings == (f"{other} records weights=trained, the checkpoint random",)


def test_a_graph_without_metadata(tmp_path: Path) -> None:
    path = _graph(tmp_path / "bare.onnx")
    assert _refused(OnnxModelError, path) == (
        f"{path}: has no cnp-convert metadata; pass variant to verify it anyway"
    )
    report = _run(path, variant="XS")
    assert report.passed and not report.metadata_present
    assert report.warnings == (
        f"{path} has no cnp-convert metadata: variant XS as asked for, weights "
        "provenance unchecked",
    )


def test_graph_contract_refusals(tmp_path: Path) -> None:
    small = _graph(tmp_path / "small.onnx", side=128, meta=_metadata())
    assert _refused(OnnxModelError, small) == (
        f"{small}: input is Nx3x128x128; ConvNeXtPose takes N x 3 x 256 x 256 (a graph "
        "exported at another size cannot be verified)"
    )
    flat = _graph(tmp_path / "flat.onnx", rank3=True, meta=_metadata())
    assert _refused(OnnxModelError, flat) == (
        f"{flat}: input is Nx3x256, expected N x 3 x 256 x 256"
    )
    one_up = _graph(tmp_path / "up.onnx", resizes=1, meta=_metadata())
    assert _refused(VariantMismatchError, one_up) == (
        f"{one_up}: the graph does not fit ConvNeXtPose-XS: 1 Resize nodes, XS has 2 upsampling "
        "blocks"
    )
    extra = _graph(tmp_path / "extra.onnx", meta=_metadata(outputs=("coords", "pose")))
    assert (
        _refused(OnnxModelError, extra)
        == f"{extra}: metadata names outputs ['pose'] the graph lacks"
    )
    claims = _graph(tmp_path / "claims.onnx", meta=_metadata(precision="fp16"))
    assert _refused(OnnxModelError, claims) == (
        f"{claims}: the metadata says precision 'fp16' but the graph's ops and initializers are "
        "fp32; the tolerance is never taken from metadata alone"
    )


def test_an_invalid_graph_is_named(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    model = onnx.load(str(path))
    model.graph.node[2].input[1] = "nowhere"  # Mul by a tensor nothing produces
    onnx.save(model, str(path))
    message = _refused(OnnxModelError, path)
    assert message.startswith(f"{path}: not a valid ONNX model (") and "nowhere" in message


def test_auto_device_says_what_ran(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    report = _run(path, device="auto")
    if torch.cuda.is_available():
        pytest.skip("the note is about machines without a usable GPU")
    expected = (
        "auto: PyTorch is a CPU-only build, so both backends run on CPU"
        if torch.version.cuda is None
        else "auto: PyTorch sees no GPU, so both backends run on CPU"
    )
    assert report.device_note == expected and report.lines()[2] == f"  note: {expected}"


# --- labels and the summary of a failure ---------------------------------------------------------


def test_checkpoint_label(tmp_path: Path) -> None:
    assert _checkpoint_label(_checkpoint()) == "tiny.pth"

    def raw(path: Path) -> RawCheckpoint:
        return RawCheckpoint(path, "torch-zip", "x", "bare", {}, None, "", 0, {})

    assert _checkpoint_label(_checkpoint(raw=raw(tmp_path / "tiny.pth"))) == str(
        tmp_path / "tiny.pth"
    )
    assert _checkpoint_label(_checkpoint(raw=raw(tmp_path / "xs.safetensors"))) == (
        f"{tmp_path / 'xs.safetensors'} (from tiny.pth)"
    )


def test_a_report_with_no_check_did_not_pass() -> None:
    report = VerifyReport(
        onnx_path="g.onnx",
        variant="XS",
        checkpoint="tiny.pth",
        weights="random",
        weights_sha256=SHA,
        metadata_present=True,
        onnx_device="cpu",
        providers=("CPUExecutionProvider",),
        torch_device="cpu",
        device_note=None,
        samples=1,
        crops=4,
        batches=(1,),
        seed=1,
        precision="bf16",
        limits={},
        results=(),
        pose=(),
        warnings=(),
        seconds=0.12345,
        execution_precision="bf16",
    )
    assert not report.passed and _first_failure(report) == "no check ran"
    assert report.to_dict()["precision_source"] == "runtime"
    assert report.to_dict()["seconds"] == 0.123
    assert report.heading()[1].endswith(
        "graph precision fp32 (read from its ops), executed in bf16: judged as bf16"
    )
    assert report.heading()[1].count("1 seeded") == 0 and "4 crops, seed 1" in report.heading()[1]
    assert report.lines()[-1] == "FAIL in 0.1 s"


def _h36m_tree(root: Path) -> Path:
    """Two test frames (S9, S11) in the reference layout, 64x64 grey pictures."""
    camera = {"1": {"R": np.eye(3).tolist(), "t": [0, 0, 0], "f": [1000, 1000], "c": [32, 32]}}
    joints = [[j * 10.0, j * 5.0, 4000.0 + j] for j in range(17)]
    for subject in (9, 11):
        sequence = f"s_{subject:02d}_act_02_subact_01_ca_01"
        name = f"{sequence}/{sequence}_000001.jpg"
        image = {
            "id": subject,
            "file_name": name,
            "width": 64,
            "height": 64,
            "subject": subject,
            "action_idx": 2,
            "subaction_idx": 1,
            "cam_idx": 1,
            "frame_idx": 0,
        }
        data = {"images": [image], "annotations": [{"image_id": subject, "bbox": [8, 8, 40, 40]}]}
        files = {"data": data, "camera": camera, "joint_3d": {"2": {"1": {"0": joints}}}}
        for kind, content in files.items():
            path = root / "annotations" / f"Human36M_subject{subject}_{kind}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content))
        picture = root / "images" / name
        picture.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(picture), np.full((64, 64, 3), 40 * subject % 255, np.uint8))
    return root


def test_reduced_precision_on_human36m_frames(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", half=True, meta=_metadata(precision="fp16"))
    root = _h36m_tree(tmp_path / "h36m")
    report = _run(path, data=root, frames=5)
    change, photos = report.pose
    assert change.source == f"2 frames of {root}" and change.frames == 2 and report.crops == 58
    assert photos.frames == 56 and photos.budget == change.budget  # both real: one budget
    # One frame of the two, drawn by the seed: the same seed draws the same frame every time.
    picks = {_run(path, data=root, frames=1, seed=3).pose[0].mean_mm for _ in range(5)}
    assert len(picks) == 1


def test_reduced_precision_crops_follow_the_seed(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", half=True, meta=_metadata(precision="fp16"))
    first, again = (_run(path, frames=3, seed=11).pose[0] for _ in range(2))
    other = _run(path, frames=3, seed=12).pose[0]
    assert first.mean_mm == again.mean_mm and first.mean_mm != other.mean_mm


def test_reduced_precision_over_budget_fails_with_the_pose_change(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", z_scale=0.06, half=True, meta=_metadata(precision="fp16"))
    with pytest.raises(ParityFailedError) as info:
        _run(path, frames=2)
    change, photos = info.value.report.pose
    assert not change.passed and not photos.passed
    assert str(info.value) == f"{path}: pose change over budget at batch 1: {change.line()}"


def test_openvino_runs_on_the_cpu_with_the_precision_asked(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    report = _run(path, runtime="openvino", ov_precision="f32")
    assert (report.runtime, report.onnx_device, report.torch_device) == ("openvino", "cpu", "cpu")
    assert report.execution_precision == "f32" and report.precision == "fp32"
    assert report.providers[0].endswith("CPU (f32, asked f32)") and report.device_note is None
    assert report.passed and report.to_dict()["precision_source"] == "runtime"


# --- the options value and the choice of devices -----------------------------------------------


def test_options_are_checked_and_normalized_when_made() -> None:
    """Before any file is read: the seed, the device, the runtime and its precision."""
    with pytest.raises(OptionError, match="seed must be a non-negative"):
        VerifyOptions(seed=-1)
    assert VerifyOptions(seed=7).seed == 7 and VerifyOptions().seed is None
    options = VerifyOptions(device=" CPU ", runtime=" OnnxRuntime ", ov_precision=" F32 ")
    assert (options.device, options.runtime, options.ov_precision) == ("cpu", "onnxruntime", "f32")
    with pytest.raises(OptionError, match="runs on the CPU here"):
        VerifyOptions(runtime="openvino", device="cuda")
    with pytest.raises(OptionError, match="device must be one of"):
        VerifyOptions(device="tpu")
    assert VerifyOptions(timeout=2).timeout == 2.0 and VerifyOptions().timeout is None
    with pytest.raises(OptionError, match="timeout must be a positive number of seconds"):
        VerifyOptions(timeout=0)


BOTH_ON_CPU = "so both backends run on CPU"


class _FakeSession:
    def __init__(self, device: str, reason: str | None = None) -> None:
        self.device, self.fallback_reason = device, reason


@pytest.mark.parametrize(
    ("device", "torch_type", "cuda_build", "session", "expected_note", "torch_after"),
    [
        ("auto", "cpu", None, "cpu", f"auto: PyTorch is a CPU-only build, {BOTH_ON_CPU}", "cpu"),
        ("auto", "cpu", "13.0", "cpu", f"auto: PyTorch sees no GPU, {BOTH_ON_CPU}", "cpu"),
        ("auto", "cuda", "13.0", "cuda", None, "cuda"),
        ("auto", "cuda", "13.0", "cpu", "auto: no provider; both backends run on CPU", "cpu"),
        ("cuda", "cuda", "13.0", "cuda", None, "cuda"),
    ],
)  # fmt: skip
def test_both_backends_run_on_one_device_family(
    monkeypatch: pytest.MonkeyPatch, device, torch_type, cuda_build, session, expected_note,
    torch_after,
) -> None:  # fmt: skip
    opened: list[str] = []

    def open_fake(path, asked, time_limit_s=None):
        assert time_limit_s == 7.5  # the run's time limit reaches every session
        opened.append(asked)
        return _FakeSession(session, "no provider" if session == "cpu" else None)

    monkeypatch.setattr(verify, "resolve_torch_device", lambda asked: torch.device(torch_type))
    monkeypatch.setattr(verify.torch.version, "cuda", cuda_build)
    monkeypatch.setattr(verify, "open_onnx_session", open_fake)
    chosen, torch_device, note = verify._choose_devices(Path("g.onnx"), device, time_limit_s=7.5)
    assert note == expected_note and torch_device.type == torch_after
    # auto with a CPU-only PyTorch never asks onnxruntime for CUDA; otherwise it asks as told
    assert opened == (["cpu"] if torch_type == "cpu" else [device])
    assert chosen.device == session


def test_openvino_gets_the_device_and_precision_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(
        verify, "open_session", lambda *args, **kwargs: calls.append((args, kwargs)) or "ov"
    )
    chosen, torch_device, note = verify._choose_devices(
        Path("g.onnx"), "cpu", "openvino", "bf16", 7.5
    )
    assert calls == [
        ((Path("g.onnx"), "openvino", "cpu"), {"ov_precision": "bf16", "time_limit_s": 7.5})
    ]
    assert (chosen, torch_device.type, note) == ("ov", "cpu", None)


# --- more of the options, the contract and the wiring --------------------------------------------


def test_option_values_are_normalized_and_atol_checked_when_made() -> None:
    timeout = VerifyOptions(timeout="2.5").timeout
    assert timeout == 2.5 and isinstance(timeout, float)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(OptionError, match="atol must be a positive finite number"):
            VerifyOptions(atol=bad)
    with pytest.raises(OptionError, match="atol must be a positive finite number"):
        VerifyOptions(atol={"heatmaps": 0.0})
    assert VerifyOptions(atol=0.5).atol == 0.5


def test_options_may_be_left_out(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(OnnxModelError, match=r"missing\.onnx"):
        verify_onnx(missing, _checkpoint())


def test_heading_lists_every_provider() -> None:
    report = VerifyReport(
        onnx_path="g.onnx", variant="XS", checkpoint="tiny.pth", weights="random",
        weights_sha256=SHA, metadata_present=True, onnx_device="cuda",
        providers=("CUDAExecutionProvider", "CPUExecutionProvider"), torch_device="cuda",
        device_note=None, samples=1, crops=4, batches=(1,), seed=1, precision="fp32", limits={},
        results=(), pose=(), warnings=(), seconds=0.0,
    )  # fmt: skip
    assert report.heading()[1].startswith(
        "  onnxruntime on cuda (CUDAExecutionProvider, CPUExecutionProvider), PyTorch on cuda;"
    )


def test_the_variant_asked_for_is_checked_against_the_metadata_first(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata(variant="S"))
    assert _refused(VariantMismatchError, path, variant="XS") == (
        f"{path}: variant XS was asked for, but the graph's metadata says S"
    )


def test_openvino_precision_defaults_to_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(verify, "open_session", lambda *a, **k: calls.append(k) or "ov")
    verify._choose_devices(Path("g.onnx"), "cpu", "openvino")
    assert calls == [{"ov_precision": "auto", "time_limit_s": None}]


def test_every_contract_problem_is_named(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", resizes=1, meta=_metadata())
    model = onnx.load(str(path))
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == "w_final":
            wide = numpy_helper.from_array(np.zeros((1152, 40, 1, 1), np.float32), "w_final")
            model.graph.initializer[i].CopyFrom(wide)
    onnx.save(model, str(path))
    assert _refused(VariantMismatchError, path) == (
        f"{path}: the graph does not fit ConvNeXtPose-XS: final conv has 1152 channels, XS has "
        "576 = 18 x depth_dim 32; 1 Resize nodes, XS has 2 upsampling blocks"
    )


def _renamed_outputs(path: Path, coords: str, heatmaps: str | None = None) -> Path:
    """The graph's coords output renamed; with heatmaps, a second output: the first channel."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.output[:] = [coords if o == "coords" else o for o in node.output]
    model.graph.output[0].name = coords
    if heatmaps is not None:
        for name, value in (("c0", 0), ("c1", 1), ("ax1", 1)):
            model.graph.initializer.append(numpy_helper.from_array(np.array([value]), name))
        model.graph.node.append(helper.make_node("Slice", ["image", "c0", "c1", "ax1"], [heatmaps]))
        model.graph.output.append(
            helper.make_tensor_value_info(heatmaps, TensorProto.FLOAT, ["N", 1, 256, 256])
        )
    onnx.save(model, str(path))
    return path


def test_a_bare_graph_outputs_are_coords_then_heatmaps_by_position(tmp_path: Path) -> None:
    path = _renamed_outputs(_graph(tmp_path / "bare.onnx"), "out0", "out1")
    report = _run(path, variant="XS")
    assert [o.name for o in report.results[0].outputs] == ["coords", "heatmaps"]
    assert report.passed and report.results[0].outputs[1].shape == (5, 1, 256, 256)
    assert set(report.limits) == {"coords", "heatmaps"}


def test_a_bare_half_graph_is_judged_on_its_first_output(tmp_path: Path) -> None:
    path = _renamed_outputs(_graph(tmp_path / "bare.onnx", half=True), "pose")
    report = _run(path, variant="XS", frames=2)
    assert report.precision == "fp16" and len(report.pose) == 2 and report.passed


def test_coords_divided_by_their_mass_get_no_sum_bound(tmp_path: Path) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.output[:] = ["summed" if o == "coords" else o for o in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "mass"))
    model.graph.node.append(helper.make_node("Div", ["summed", "mass"], ["coords"]))
    onnx.save(model, str(path))
    report = _run(path)
    assert report.limits == {"coords": "max(40 x floor, 2 x its max) + 0.0002"} and report.passed


def test_the_time_limit_and_the_checkpoint_reach_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    opened, built = [], []
    real_open = verify.open_onnx_session

    def open_recorded(path, device, time_limit_s=None):
        opened.append(time_limit_s)
        return real_open(path, device, time_limit_s=time_limit_s)

    monkeypatch.setattr(verify, "open_onnx_session", open_recorded)
    monkeypatch.setattr(verify, "build_loaded_model", lambda ckpt: built.append(ckpt) or TinyPose())
    ckpt = _checkpoint()
    assert _run(path, timeout=30, ckpt=ckpt).passed
    assert opened == [30.0] and built == [ckpt]


class _ExecutesInBf16:
    device, providers, fallback_reason, execution_precision = "cpu", ("fake",), None, "bf16"


def test_atol_is_refused_where_the_runtime_computes_in_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _graph(tmp_path / "g.onnx", meta=_metadata())
    monkeypatch.setattr(
        verify, "_choose_devices", lambda *args: (_ExecutesInBf16(), torch.device("cpu"), None)
    )
    assert _refused(OptionError, path, atol=0.1) == (
        f"atol applies to fp32 runs; {path} runs in bf16 here, judged by its budget"
    )


def test_dataset_crops_are_made_at_the_variant_input_size(tmp_path: Path) -> None:
    root = _h36m_tree(tmp_path / "h36m")
    small = replace(XS, input_hw=(128, 128))
    crops = verify._pose_crops(small, 3, 2, root)
    assert crops.images.shape == (2, 3, 128, 128)
