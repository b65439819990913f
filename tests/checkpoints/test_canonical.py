"""Canonicalization as pure functions over dicts: prefixes, head renames, variant evidence."""

from __future__ import annotations

import pytest
import torch

from converter.checkpoints.canonical import (
    CheckpointMetadata,
    canonical_names,
    check_against_model,
    explain_mismatch,
    match_variant,
    random_checkpoint,
    read_evidence,
    rename_head_keys,
    strip_prefixes,
    variant_claimed_by_name,
    weights_digest,
)
from converter.checkpoints.fabricate import release_payload, seeded_state_dict, to_release_keys
from converter.core.errors import CheckpointError, VariantError
from converter.core.variants import VARIANTS, get_variant


@pytest.fixture(scope="module")
def canonical_xs() -> dict[str, torch.Tensor]:
    return seeded_state_dict(get_variant("XS"))


def test_strip_prefixes_handles_stacked_wrappers() -> None:
    t = torch.zeros(1)
    out, found = strip_prefixes({"module._orig_mod.a.b": t, "module.c": t, "d": t})
    assert list(out) == ["a.b", "c", "d"]
    assert found == ("module.", "_orig_mod.")


def test_strip_prefixes_refuses_collisions() -> None:
    t = torch.zeros(1)
    with pytest.raises(CheckpointError, match="collides"):
        strip_prefixes({"module.a": t, "a": t})


def test_legacy_head_rename_is_complete_and_one_to_one(canonical_xs) -> None:
    legacy = {k.removeprefix("module."): v for k, v in to_release_keys(canonical_xs, True).items()}
    renamed, naming, count = rename_head_keys(legacy)
    assert naming == "legacy-numbered"
    assert count == 27  # 3 blocks x (2 dwconv + 5 norm + 2 pwconv)
    assert list(renamed) == list(canonical_xs)
    assert "head.deconv_layers_1.0.weight" in legacy
    assert "head.deconv_layers_1.1.num_batches_tracked" in legacy


def test_mixed_head_naming_is_refused(canonical_xs) -> None:
    mixed = dict(canonical_xs)
    mixed["head.deconv_layers_2.0.weight"] = mixed.pop("head.deconv_layers_2.dwconv.weight")
    with pytest.raises(CheckpointError, match="mixes legacy numbered keys"):
        rename_head_keys(mixed)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_release_keys_canonicalize_to_the_model_names(name: str) -> None:
    payload = release_payload(name)
    result = canonical_names(payload["network"])
    assert result.prefixes_stripped == ("module.",)
    assert result.head_naming == ("legacy-numbered" if name in ("M", "L") else "official")
    evidence = read_evidence(result.state_dict)
    spec = match_variant(evidence)
    assert spec.name == name
    checked = check_against_model(result.state_dict, spec)
    reference = seeded_state_dict(spec)
    assert list(checked) == list(reference)
    assert all(torch.equal(checked[k], reference[k]) for k in reference)


def test_evidence_reads_l_shapes() -> None:
    evidence = read_evidence(seeded_state_dict(get_variant("L")))
    assert evidence.stem_channels == 48
    assert evidence.depths == (3, 3, 9, 3)
    assert evidence.head_width == 512
    assert evidence.final_channels == 1152
    assert evidence.depth_dim == 64
    assert evidence.head_kernel == 3


def test_mismatch_message_names_both_variants_and_the_evidence() -> None:
    l_spec, xs_spec = get_variant("L"), get_variant("XS")
    evidence = read_evidence(seeded_state_dict(l_spec))
    message = explain_mismatch(l_spec, evidence, xs_spec)
    assert message == (
        "variant XS was asked for, but the tensors are ConvNeXtPose-L (stem 48 ch, blocks "
        "per stage [3, 3, 9, 3] (stage 3 has 9), dims [48, 96, 192, 384], head 512, final layer "
        "1152 = 18 x depth_dim 64); XS has a 40-ch stem, 6 blocks in stage 3, head 128, "
        "depth_dim 32"
    )


def test_resnet_state_dict_is_not_convnextpose() -> None:
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64)}
    with pytest.raises(CheckpointError, match=r"not a ConvNeXtPose state dict.*conv1\.weight"):
        read_evidence(resnet)


def test_unknown_architecture_fits_no_variant(canonical_xs) -> None:
    odd = dict(canonical_xs)
    odd["head.final_layer.weight"] = torch.zeros(18 * 48, 128, 1, 1)
    with pytest.raises(VariantError, match=r"fit no released variant.*depth_dim 48"):
        match_variant(read_evidence(odd))


def test_missing_and_extra_tensors_are_errors(canonical_xs) -> None:
    spec = get_variant("XS")
    missing = dict(canonical_xs)
    del missing["backbone.stages.2.5.pwconv2.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing tensor\(s\) \(first: backbone\.stages"):
        check_against_model(missing, spec)
    extra = dict(canonical_xs)
    extra["head.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 unexpected tensor\(s\) \(first: head\.extra"):
        check_against_model(extra, spec)


def test_shape_mismatch_names_both_shapes(canonical_xs) -> None:
    bad = dict(canonical_xs)
    bad["head.deconv_layers_2.dwconv.weight"] = torch.zeros(128, 1, 5, 5)
    with pytest.raises(
        CheckpointError, match=r"size mismatch .* \[128, 1, 5, 5\].*\[128, 1, 3, 3\]"
    ):
        check_against_model(bad, get_variant("XS"))


def test_missing_num_batches_tracked_is_tolerated(canonical_xs) -> None:
    trimmed = {k: v for k, v in canonical_xs.items() if not k.endswith("num_batches_tracked")}
    checked = check_against_model(trimmed, get_variant("XS"))
    assert list(checked) == list(canonical_xs)
    assert weights_digest(checked) == weights_digest(canonical_xs)


def test_weights_digest_depends_on_values(canonical_xs) -> None:
    changed = dict(canonical_xs)
    changed["head.final_layer.bias"] = changed["head.final_layer.bias"] + 1e-6
    assert weights_digest(changed) != weights_digest(canonical_xs)


def test_metadata_round_trips_through_strings() -> None:
    meta = random_checkpoint(get_variant("XS")).metadata
    strings = meta.to_strings()
    assert all(isinstance(v, str) for v in strings.values())
    assert strings["upsample"] == "true,true,false"
    assert strings["weights"] == "random"
    assert CheckpointMetadata.from_strings(strings) == meta


@pytest.mark.parametrize(
    ("name", "claim"),
    [
        ("ConvNeXtPose_XS.tar", "XS"),
        ("ConvNeXtPose_S.tar", "S"),
        ("convnextpose-l.pth", "L"),
        ("ConvNeXtPose_M.canonical.safetensors", "M"),
        ("snapshot_83.pth.tar", None),
        ("my_weights.pth", None),
    ],
)
def test_variant_claimed_by_name(name: str, claim: str | None) -> None:
    assert variant_claimed_by_name(name) == claim
