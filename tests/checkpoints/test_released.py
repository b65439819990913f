"""The shipped released XS is the authors' network: every tensor said to be theirs hashes to the
published storage list (tests/data/released_xs/SHA256SUMS), the recovered ones are exactly the
lost storages, and the Drive-shaped copy reads like the real file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from converter.checkpoints.canonical import load_checkpoint
from converter.checkpoints.inspection import inspect_checkpoint
from converter.checkpoints.released import (
    OPTIMIZER_FILE,
    RELEASED_FILE,
    load_released,
    provenance,
    released_release,
)
from converter.core.model import ConvNeXtPose
from converter.core.variants import get_variant

SUMS = Path(__file__).parents[1] / "data" / "released_xs" / "SHA256SUMS"
# The storages the fork never committed (its data/0 .. data/10), by the pickler's order: the
# stem conv, the stem BatchNorm, the BatchNorm before the first downsampling conv.
LOST_STORAGES = set(range(11))
RECORDED_BATCHES = 1_346_328  # every num_batches_tracked and AdamW step: 69 epochs x 19,512


def published_sums() -> dict[int, str]:
    sums = {}
    for line in SUMS.read_text().splitlines():
        digest, name = line.split()
        sums[int(name)] = digest
    return sums


def raw_digest(tensor: torch.Tensor) -> str:
    """sha256 of the tensor's bytes as torch stores them: little-endian, C order."""
    array = tensor.contiguous().numpy()
    return hashlib.sha256(array.astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def storage_names() -> list[str]:
    """Storage N's tensor, by the rule: state_dict order, then per parameter its three moments."""
    model = ConvNeXtPose(get_variant("XS"))
    names = list(model.state_dict())
    for name, _ in model.named_parameters():
        names += [f"{name}.step", f"{name}.exp_avg", f"{name}.exp_avg_sq"]
    return names


def test_the_published_list_is_the_storages_that_survive() -> None:
    sums = published_sums()
    assert len(sums) == 585 and set(range(596)) - set(sums) == LOST_STORAGES


def test_every_authors_tensor_is_bit_for_bit_its_storage() -> None:
    sums, names = published_sums(), storage_names()
    record = provenance(load_released())
    claimed = record["authors_tensor_storages"]
    with safe_open(str(RELEASED_FILE), "pt") as handle:
        stored = set(handle.keys())
        for name, number in claimed.items():
            assert names[number] == name
            assert raw_digest(handle.get_tensor(name)) == sums[number], name
    # num_batches_tracked is not stored (the loader restores it); its storages hold the count.
    counts = [n for n, name in enumerate(names[:194]) if name.endswith("num_batches_tracked")]
    count_digest = raw_digest(torch.tensor(RECORDED_BATCHES, dtype=torch.int64))
    assert all(sums[n] == count_digest for n in counts if n in sums)
    present_counts = sum(1 for n in counts if n in sums)
    assert len(claimed) + present_counts == 183
    # What is not the authors' is exactly what was lost, and is said to be recovered.
    lost = {names[n] for n in LOST_STORAGES} - {n for n in names if "num_batches" in n}
    assert stored - set(claimed) == lost == set(record["recovered_tensors"])


def test_the_optimizer_moments_are_the_authors() -> None:
    sums, names = published_sums(), storage_names()
    with safe_open(str(OPTIMIZER_FILE), "pt") as handle:
        assert len(list(handle.keys())) == 402
        for number in range(194, 596):
            tensor = handle.get_tensor(names[number])
            assert raw_digest(tensor) == sums[number], names[number]
            if names[number].endswith(".step"):
                assert float(tensor) == RECORDED_BATCHES


def test_the_header_says_whose_weights_and_how_they_were_rebuilt() -> None:
    ckpt = load_released()
    record = provenance(ckpt)
    assert "Korea University Media Lab" in record["weights"] and "MIT" in record["weights"]
    assert "EstebanCabreraArbizu/ConvNeXtPose commit 87b6e7f" in record["source"]
    assert record["rebuilt_by"] == "python training/rebuild_released_xs.py"
    assert ckpt.metadata.epoch == 68 and ckpt.metadata.weights == "trained"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return released_release(tmp_path_factory.mktemp("drive"))


def test_the_drive_shaped_copy_reads_like_the_real_file(release: Path) -> None:
    assert release.name == "ConvNeXtPose_XS.tar"
    report = inspect_checkpoint(release)
    assert report.variant == "XS" and report.epoch == 68
    assert report.prefixes_stripped == ("module.",)
    assert (
        load_checkpoint(release).metadata.weights_sha256 == load_released().metadata.weights_sha256
    )


def test_the_drive_shaped_copy_carries_the_authors_optimizer_state(release: Path) -> None:
    payload = torch.load(release, weights_only=True)
    state = payload["optimizer"]["state"]
    assert len(state) == 134
    names = storage_names()
    with safe_open(str(OPTIMIZER_FILE), "pt") as handle:
        for index in (0, 67, 133):
            storage = 194 + 3 * index
            assert torch.equal(state[index]["exp_avg_sq"], handle.get_tensor(names[storage + 2]))
    counts = [v for k, v in payload["network"].items() if k.endswith("num_batches_tracked")]
    assert {int(v) for v in counts} == {RECORDED_BATCHES}


def test_the_trained_network_lives_where_random_weights_do_not() -> None:
    """The regime the storages' README measured: BatchNorm variances 4e-11 .. 1.7e-4 (one channel
    near 2e-18), far under the eps of 1e-5 they are added to."""
    ckpt = load_released()
    authors = provenance(ckpt)["authors_tensor_storages"]
    variances = torch.cat(
        [ckpt.state_dict[k] for k in authors if k.endswith("running_var")]
    ).double()
    assert len(variances) > 2000
    assert 1e-19 < float(variances.min()) < 1e-17
    assert 1.5e-4 < float(variances.max()) < 2e-4
    assert float(variances.median()) < 1e-5


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "released_xs"


@pytest.mark.skipif(not (SHARED / "storages").is_dir(), reason="the raw storages are in ../shared")
def test_the_rebuild_script_reads_the_storages_into_the_shipped_tensors() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "training"))
    from rebuild_released_xs import check_sums, read_storages

    assert len(check_sums(SHARED)) == 585
    storages = read_storages(SHARED)
    shipped = load_released().state_dict
    for name, tensor in storages.network.items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(shipped[name], tensor), name
