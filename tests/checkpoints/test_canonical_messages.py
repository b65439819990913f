"""converter.checkpoints.canonical: exact messages, detected variant and recorded provenance.

Built on the XS seeded state dict (a fraction of a second) and small files written here, so it
stays fast enough for `just mutate`. Expected values are the variant table of the paper
(XS: 40-ch stem, depths 2-2-6-2, head 128, depth_dim 32) and the documented key names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from converter.checkpoints.canonical import (
    CANONICAL_FORMAT,
    CanonicalCheckpoint,
    CheckpointMetadata,
    build_loaded_model,
    canonicalize,
    check_against_model,
    load_checkpoint,
    random_checkpoint,
    read_evidence,
    rename_head_keys,
    strip_prefixes,
    variant_claimed_by_name,
    weights_digest,
)
from converter.checkpoints.fabricate import seeded_state_dict
from converter.checkpoints.reader import read_checkpoint
from converter.core.errors import CheckpointError, VariantError, VariantMismatchError
from converter.core.variants import get_variant

XS_EVIDENCE = (
    "stem 40 ch, blocks per stage [2, 2, 6, 2] (stage 3 has 6), dims [40, 80, 160, 320], "
    "head 128, final layer 576 = 18 x depth_dim 32"
)


@pytest.fixture(scope="module")
def xs() -> dict[str, torch.Tensor]:
    return seeded_state_dict(get_variant("XS"))


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released M/L naming: module. prefix, numbered head layers (facts §2.3)."""
    names = {"dwconv": "0", "norm": "1", "pwconv": "2"}
    out = {}
    for key, tensor in state.items():
        for official, number in names.items():
            for block in "123":
                key = key.replace(
                    f"head.deconv_layers_{block}.{official}.",
                    f"head.deconv_layers_{block}.{number}.",
                )
        out["module." + key] = tensor
    return out


def _message(exc_type: type[Exception], call, *args) -> str:
    with pytest.raises(exc_type) as info:
        call(*args)
    assert info.value.exit_code == 2
    return str(info.value)


# --- names ---------------------------------------------------------------------------------------


def test_prefix_collision_message() -> None:
    t = torch.zeros(1)
    message = _message(CheckpointError, strip_prefixes, {"a": t, "module.a": t})
    assert message == "key 'module.a' collides with another key after removing ['module.']"


def test_prefixes_are_reported_once_each_in_order_found() -> None:
    t = torch.zeros(1)
    out, found = strip_prefixes({"_orig_mod.module.x": t, "module.module.y": t, "z": t})
    assert list(out) == ["x", "y", "z"]
    assert found == ("_orig_mod.", "module.")
    assert strip_prefixes({"a.module.b": t}) == ({"a.module.b": t}, ())  # only leading ones


def test_legacy_names_are_renamed_and_counted() -> None:
    t = torch.zeros(1)
    renamed, naming, count = rename_head_keys(
        {
            "head.deconv_layers_1.0.weight": t,
            "head.deconv_layers_3.1.running_var": t,
            "head.deconv_layers_2.2.bias": t,
            "head.deconv_layers_4.0.weight": t,  # no fourth block: left alone
            "backbone.x": t,
        }
    )
    assert naming == "legacy-numbered" and count == 3
    assert list(renamed) == [
        "head.deconv_layers_1.dwconv.weight",
        "head.deconv_layers_3.norm.running_var",
        "head.deconv_layers_2.pwconv.bias",
        "head.deconv_layers_4.0.weight",
        "backbone.x",
    ]
    official, naming, count = rename_head_keys({"head.deconv_layers_1.norm.weight": t})
    assert (list(official), naming, count) == (["head.deconv_layers_1.norm.weight"], "official", 0)


def test_mixed_naming_message() -> None:
    t = torch.zeros(1)
    state = {"head.deconv_layers_1.0.weight": t, "head.deconv_layers_2.pwconv.weight": t}
    assert _message(CheckpointError, rename_head_keys, state) == (
        "the head mixes legacy numbered keys (head.deconv_layers_1.0.weight) and official keys "
        "(head.deconv_layers_2.pwconv.weight)"
    )


# --- evidence and variant ------------------------------------------------------------------------


def test_xs_evidence_from_shapes(xs) -> None:
    evidence = read_evidence(xs)
    assert (evidence.stem_channels, evidence.depths, evidence.dims) == (
        40,
        (2, 2, 6, 2),
        (40, 80, 160, 320),
    )
    assert (evidence.head_width, evidence.head_kernel) == (128, 3)
    assert (evidence.final_channels, evidence.depth_dim) == (576, 32)
    assert evidence.describe() == XS_EVIDENCE


def test_missing_anchor_tensors_are_listed(xs) -> None:
    state = dict(xs)
    for key in ("head.final_layer.weight", "backbone.downsample_layers.0.0.weight"):
        del state[key]
    assert _message(CheckpointError, read_evidence, state) == (
        "not a complete ConvNeXtPose state dict: missing backbone.downsample_layers.0.0.weight, "
        "head.final_layer.weight"
    )
    for i in (1, 2, 3):
        del state[f"backbone.downsample_layers.{i}.1.weight"]
    assert _message(CheckpointError, read_evidence, state) == (
        "not a complete ConvNeXtPose state dict: missing backbone.downsample_layers.0.0.weight, "
        "backbone.downsample_layers.1.1.weight, backbone.downsample_layers.2.1.weight and 2 more"
    )
    del state["head.deconv_layers_1.dwconv.weight"]
    assert _message(CheckpointError, read_evidence, state).endswith(" and 3 more")
    three = {k: v for k, v in xs.items() if not k.startswith("head.")}
    assert _message(CheckpointError, read_evidence, three) == (
        "not a complete ConvNeXtPose state dict: missing head.deconv_layers_1.dwconv.weight, "
        "head.deconv_layers_1.pwconv.weight, head.final_layer.weight"
    )
    four = dict(three)
    del four["backbone.downsample_layers.3.1.weight"]
    assert _message(CheckpointError, read_evidence, four).endswith(
        "backbone.downsample_layers.3.1.weight, head.deconv_layers_1.dwconv.weight, "
        "head.deconv_layers_1.pwconv.weight and 1 more"
    )


def test_no_anchor_at_all() -> None:
    t = torch.zeros(1)
    state = {"a": t, "b": t, "c": t, "d": t, "e": t}
    assert _message(CheckpointError, read_evidence, state) == (
        "not a ConvNeXtPose state dict: none of its backbone/head tensors are present "
        "(first keys: a, b, c, d)"
    )
    assert _message(CheckpointError, read_evidence, {}).endswith("(first keys: no keys at all)")


def test_final_layer_for_another_joint_set(xs) -> None:
    state = dict(xs)
    state["head.final_layer.weight"] = torch.zeros(21 * 32, 128, 1, 1)
    assert _message(CheckpointError, read_evidence, state) == (
        "final layer has 672 outputs, not a multiple of 18 joints (a checkpoint for another "
        "joint set, e.g. MuCo's 21, is not supported)"
    )


@pytest.mark.parametrize(
    ("key", "shape", "differs"),
    [
        ("head.deconv_layers_1.pwconv.weight", (96, 128, 1, 1), "head 96"),
        ("head.deconv_layers_1.dwconv.weight", (128, 1, 5, 5), "head 128"),
        ("head.deconv_layers_1.dwconv.weight", (128, 1, 3, 5), "head 128"),  # kernel width 5
        ("backbone.downsample_layers.3.1.weight", (256, 160, 2, 2), "dims [40, 80, 160, 256]"),
    ],
)
def test_each_shape_fact_decides_the_variant(xs, key, shape, differs) -> None:
    state = dict(xs)
    state[key] = torch.zeros(shape)
    message = _message(VariantError, canonicalize_tensors, state)
    assert message.startswith("tensors fit no released variant (") and differs in message
    assert "; XS has a 40-ch stem, 6 blocks in stage 3, head 128, depth_dim 32; S has" in message


def test_a_missing_block_changes_the_depths(xs) -> None:
    state = {k: v for k, v in xs.items() if not k.startswith("backbone.stages.3.1.")}
    message = _message(VariantError, canonicalize_tensors, state)
    assert "blocks per stage [2, 2, 6, 1]" in message


def canonicalize_tensors(state: dict[str, torch.Tensor]):
    from converter.checkpoints.reader import RawCheckpoint

    raw = RawCheckpoint(Path("x.pth"), "torch-zip", "x", "bare", state, None, "", 0, {})
    return canonicalize(raw)


# --- the exact key set ---------------------------------------------------------------------------


def test_key_set_messages(xs) -> None:
    spec = get_variant("XS")
    state = dict(xs)
    removed = [k for k in xs if not k.endswith("num_batches_tracked")][:4]
    for key in removed:
        del state[key]
    state["extra.a"] = torch.zeros(1)
    assert _message(CheckpointError, check_against_model, state, spec) == (
        f"does not match ConvNeXtPose-XS: 4 missing tensor(s) (first: {', '.join(removed[:3])}); "
        "1 unexpected tensor(s) (first: extra.a)"
    )


def test_values_must_be_tensors_of_the_right_kind(xs) -> None:
    spec = get_variant("XS")
    key = "head.final_layer.bias"
    not_tensor = dict(xs)
    not_tensor[key] = [0.0] * 576
    assert _message(CheckpointError, check_against_model, not_tensor, spec) == (
        f"{key} is a list, not a tensor"
    )
    integer = dict(xs)
    integer[key] = torch.zeros(576, dtype=torch.int32)
    assert _message(CheckpointError, check_against_model, integer, spec) == (
        f"{key} has dtype torch.int32, expected floating point"
    )
    wrong = dict(xs)
    wrong[key] = torch.zeros(575)
    assert _message(CheckpointError, check_against_model, wrong, spec) == (
        f"size mismatch for {key}: checkpoint [575], ConvNeXtPose-XS expects [576]"
    )


def test_half_and_double_weights_become_float32_contiguous(xs) -> None:
    spec = get_variant("XS")
    state = {k: (v.double() if v.is_floating_point() else v) for k, v in xs.items()}
    stem = "backbone.downsample_layers.0.0.weight"
    state[stem] = xs[stem].transpose(2, 3).contiguous().transpose(2, 3)  # same values, strided
    assert not state[stem].is_contiguous()
    checked = check_against_model(state, spec)
    assert all(v.dtype == torch.float32 for k, v in checked.items() if xs[k].is_floating_point())
    assert checked[stem].is_contiguous() and torch.equal(checked[stem], xs[stem])
    tracked = [k for k in checked if k.endswith("num_batches_tracked")]
    assert tracked and all(checked[k].dtype == torch.int64 for k in tracked)


# --- whole files: detection, provenance, errors prefixed with the path ---------------------------


def test_release_shaped_file_is_detected_and_its_provenance_recorded(xs, tmp_path: Path) -> None:
    path = tmp_path / "snapshot_24.pth.tar"
    torch.save({"epoch": 24, "network": _legacy(xs), "optimizer": {}}, path)
    ckpt = load_checkpoint(path)
    meta = ckpt.metadata
    assert ckpt.spec.name == "XS" and meta.variant == "XS"
    assert (meta.depths, meta.dims, meta.head_width, meta.depth_dim, meta.joint_num) == (
        (2, 2, 6, 2),
        (40, 80, 160, 320),
        128,
        32,
        18,
    )
    assert (meta.heatmap_hw, meta.upsample) == ((32, 32), (True, True, False))
    assert (meta.head_naming, meta.keys_renamed, meta.prefixes_stripped) == (
        "legacy-numbered",
        27,  # 3 blocks x (dwconv w+b, norm w+b+mean+var+count, pwconv w+b)
        ("module.",),
    )
    assert (meta.epoch, meta.source_name, meta.container, meta.weights) == (
        24,
        "snapshot_24.pth.tar",
        "torch-zip",
        "trained",
    )
    assert meta.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta.source_size == path.stat().st_size
    assert meta.evidence == XS_EVIDENCE == ckpt.evidence.describe()
    assert list(ckpt.state_dict) == list(xs)
    assert ckpt.raw is not None and ckpt.raw.path == path
    model = build_loaded_model(ckpt)
    assert not model.training
    assert torch.equal(model.state_dict()["head.final_layer.bias"], xs["head.final_layer.bias"])


def test_weights_digest_is_the_documented_hash(xs) -> None:
    ckpt = canonicalize_tensors(dict(xs))
    digest = hashlib.sha256()
    for key in sorted(xs):
        if key.endswith("num_batches_tracked"):
            continue
        tensor = xs[key].to(torch.float32).contiguous()
        digest.update(f"{key}:{list(tensor.shape)};".encode() + tensor.numpy().tobytes())
    assert ckpt.metadata.weights_sha256 == digest.hexdigest()


def test_errors_name_the_file(xs, tmp_path: Path) -> None:
    path = tmp_path / "ConvNeXtPose_S.pth"
    torch.save({"state_dict": xs}, path)
    with pytest.raises(VariantMismatchError) as info:
        load_checkpoint(path, "S")
    assert str(info.value) == (
        f"{path}: variant S was asked for, but the tensors are ConvNeXtPose-XS "
        f"({XS_EVIDENCE}); S has a 48-ch stem, 9 blocks in stage 3, head 256, depth_dim 32"
    )
    assert info.value.exit_code == 2
    assert load_checkpoint(path, "xs").spec.name == "XS"  # the name is case-insensitive
    broken = tmp_path / "broken.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, broken)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(broken)
    assert str(info.value).startswith(f"{broken}: not a ConvNeXtPose state dict: none of")


def test_a_canonical_file_keeps_pointing_at_its_release(xs, tmp_path: Path) -> None:
    release = tmp_path / "ConvNeXtPose_XS.tar"
    torch.save({"epoch": 68, "network": _legacy(xs), "optimizer": {}}, release)
    first = load_checkpoint(release)
    canonical = tmp_path / "xs.pth"
    torch.save(
        {"state_dict": first.state_dict, "cnp_metadata": first.metadata.to_strings()}, canonical
    )
    assert first.metadata.to_strings()["format"] == CANONICAL_FORMAT
    second = load_checkpoint(canonical)
    assert second.metadata == first.metadata
    assert read_checkpoint(canonical).sha256 != first.metadata.source_sha256


def test_metadata_strings_format(xs) -> None:
    meta = canonicalize_tensors(dict(xs)).metadata
    strings = meta.to_strings()
    assert strings["format"] == "cnp-canonical/1"
    assert strings["depths"] == "2,2,6,2" and strings["upsample"] == "true,true,false"
    assert strings["epoch"] == "" and strings["prefixes_stripped"] == ""
    assert strings["source_name"] == "x.pth" and strings["weights"] == "trained"
    back = CheckpointMetadata.from_strings(strings)
    assert back == meta and back.epoch is None and back.prefixes_stripped == ()
    # Only booleans are lowercased: a header's other text comes back exactly as it was read.
    mixed_case = CheckpointMetadata.from_strings(dict(strings, prefixes_stripped="Wrapper."))
    assert mixed_case.to_strings()["prefixes_stripped"] == "Wrapper."
    without_version = {k: v for k, v in strings.items() if k != "converter_version"}
    assert CheckpointMetadata.from_strings(without_version).converter_version == "unknown"
    with pytest.raises(CheckpointError) as info:
        CheckpointMetadata.from_strings({k: v for k, v in strings.items() if k != "dims"})
    assert str(info.value) == "canonical metadata is incomplete or malformed ('dims')"
    bad = dict(strings, head_width="wide")
    with pytest.raises(CheckpointError) as info:
        CheckpointMetadata.from_strings(bad)
    assert str(info.value).startswith(
        "canonical metadata is incomplete or malformed (invalid literal"
    )


@pytest.mark.parametrize(
    ("name", "claim"),
    [
        ("Conv-Next-Pose_xs.pth", "XS"),
        ("convnextpose_s_finetuned.pth", "S"),
        ("ConvNeXtPose_M", "M"),
        ("ConvNeXtPose-Large.pth", None),
        ("ConvNeXtPose_XL.pth", None),
        ("model_L_ConvNeXtPose.pth", None),  # the claim must follow the name
        ("/some/ConvNeXtPose_XS/weights.pth", None),  # only the file's own name counts
        ("Conv_Next_Pose_XS.pth", "XS"),
        ("ConvNeXtPose_L_from_ConvNeXtPose_XS.pth", "L"),  # the first claim after the name
        ("conv--next-pose_s.pth", "S"),
    ],
)
def test_name_claims(name: str, claim: str | None) -> None:
    assert variant_claimed_by_name(name) == claim


def test_random_checkpoint_says_what_it_is(xs) -> None:
    ckpt = random_checkpoint(get_variant("XS"), 3)
    meta = ckpt.metadata
    assert ckpt.spec.name == "XS" and ckpt.raw is None
    assert ckpt.evidence.describe() == XS_EVIDENCE == meta.evidence
    assert (meta.source_name, meta.source_sha256, meta.source_size, meta.container) == (
        "random(seed=3)",
        "",
        0,
        "none",
    )
    assert (meta.weights, meta.head_naming, meta.keys_renamed, meta.prefixes_stripped) == (
        "random",
        "official",
        0,
        (),
    )
    assert meta.epoch is None and meta.upsample == (True, True, False)
    third = seeded_state_dict(get_variant("XS"), 3)
    assert list(ckpt.state_dict) == list(third)
    assert all(torch.equal(ckpt.state_dict[k], third[k]) for k in third)
    assert meta.weights_sha256 == weights_digest(third) != weights_digest(xs)
    default = random_checkpoint(get_variant("XS"))
    assert default.metadata.weights_sha256 == weights_digest(xs)  # seed 0
    assert default.metadata.source_name == "random(seed=0)"


def test_a_partial_state_dict_never_loads(xs) -> None:
    extra = dict(xs)
    extra["head.extra.weight"] = torch.zeros(1)
    ckpt = random_checkpoint(get_variant("XS"))
    odd = CanonicalCheckpoint(ckpt.spec, extra, ckpt.metadata, ckpt.evidence)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        build_loaded_model(odd)


def test_provenance_comes_from_the_canonical_header(xs, tmp_path: Path) -> None:
    source = random_checkpoint(get_variant("XS"))
    strings = dict(source.metadata.to_strings(), epoch="68", prefixes_stripped="module.,_orig_mod.")
    strings["container"] = "torch-legacy"
    path = tmp_path / "canonical.pth"
    torch.save({"state_dict": source.state_dict, "epoch": 5, "cnp_metadata": strings}, path)
    meta = load_checkpoint(path).metadata
    assert (meta.epoch, meta.container, meta.weights, meta.source_name) == (
        68,
        "torch-legacy",
        "random",
        "random(seed=0)",
    )
    assert meta.prefixes_stripped == ("module.", "_orig_mod.")
    assert (meta.source_sha256, meta.source_size) == ("", 0)


def test_the_digest_is_over_float32_values(xs) -> None:
    """The same weights stored in float64 (or float16-exact values) give the same digest."""
    as_double = {k: (v.double() if v.is_floating_point() else v) for k, v in xs.items()}
    assert weights_digest(as_double) == weights_digest(xs)


def test_four_unexpected_tensors_show_three_and_missing_counters_are_zero(xs) -> None:
    spec = get_variant("XS")
    state = dict(xs, **{f"extra.{i}": torch.zeros(1) for i in range(4)})
    assert _message(CheckpointError, check_against_model, state, spec) == (
        "does not match ConvNeXtPose-XS: 4 unexpected tensor(s) (first: extra.0, extra.1, extra.2)"
    )
    trimmed = {k: v for k, v in xs.items() if not k.endswith("num_batches_tracked")}
    checked = check_against_model(trimmed, spec)
    counters = [k for k in checked if k.endswith("num_batches_tracked")]
    assert counters and all(
        checked[k].dtype == torch.int64 and checked[k].shape == () and int(checked[k]) == 0
        for k in counters
    )


def test_a_zero_variance_is_a_statistic_and_a_negative_one_is_not(xs) -> None:
    spec = get_variant("XS")
    key = "backbone.norm.running_var"
    for value, refused in ((0.0, False), (-1e-30, True)):  # a constant channel has variance 0
        state = dict(xs)
        state[key] = xs[key].clone()
        state[key][5] = value
        if refused:
            assert _message(CheckpointError, check_against_model, state, spec) == (
                f"{key} holds a negative variance (-1e-30): not a statistic"
            )
        else:
            assert check_against_model(state, spec)[key][5] == 0.0
