"""The canonical key manifest of a variant: every state-dict name with its shape and dtype."""

from __future__ import annotations

from .model import ConvNeXtPose
from .variants import VariantSpec


def key_manifest(spec: VariantSpec) -> dict[str, dict[str, object]]:
    state = ConvNeXtPose(spec).state_dict()
    return {
        name: {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
        for name, tensor in state.items()
    }
