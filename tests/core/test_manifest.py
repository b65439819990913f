"""The built model's canonical key manifest equals the reviewed golden file, per variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converter.core.manifest import key_manifest
from converter.core.variants import VARIANTS

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_model_matches_golden_manifest(name: str) -> None:
    path = GOLDEN / f"manifest_{name}.json"
    if not path.exists():
        pytest.fail(f"missing golden file {path}; regenerate it with `just golden` and review it")
    golden = json.loads(path.read_text())
    manifest = key_manifest(VARIANTS[name])
    assert list(manifest) == list(golden)
    assert manifest == golden


def test_manifest_holds_the_known_l_head_shapes() -> None:
    manifest = key_manifest(VARIANTS["L"])
    assert manifest["head.deconv_layers_1.pwconv.weight"]["shape"] == [512, 384, 1, 1]
    assert manifest["head.deconv_layers_2.dwconv.weight"]["shape"] == [512, 1, 3, 3]
    assert manifest["head.final_layer.weight"]["shape"] == [1152, 512, 1, 1]
    assert manifest["backbone.stages.3.0.pwconv1.weight"]["shape"] == [1536, 384, 1, 1]
    assert manifest["head.deconv_layers_1.norm.num_batches_tracked"] == {
        "shape": [],
        "dtype": "int64",
    }
    assert len(manifest) == 260
