"""Exports and checkpoints shared by the ONNX test modules, built once per test session.

An export costs seconds on a small CPU; several modules need the same XS graph. Tests must
treat the returned files as read-only (copy before editing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from converter.canonical import CanonicalCheckpoint, load_checkpoint, random_checkpoint
from converter.export import ExportReport, export_onnx
from converter.variants import get_variant

_CHECKPOINTS: dict[tuple[str, str, int], CanonicalCheckpoint] = {}
_EXPORTS: dict[tuple, tuple[Path, ExportReport]] = {}


def release_checkpoint(release_file: Callable[[str], Path], variant: str) -> CanonicalCheckpoint:
    """The canonicalized fabricated release (its weights are seeded_state_dict(spec, 0))."""
    key = ("release", variant, 0)
    if key not in _CHECKPOINTS:
        _CHECKPOINTS[key] = load_checkpoint(release_file(variant))
    return _CHECKPOINTS[key]


def seeded_checkpoint(variant: str, seed: int) -> CanonicalCheckpoint:
    key = ("random", variant, seed)
    if key not in _CHECKPOINTS:
        _CHECKPOINTS[key] = random_checkpoint(get_variant(variant), seed)
    return _CHECKPOINTS[key]


def exported(
    tmp_path_factory: pytest.TempPathFactory, ckpt: CanonicalCheckpoint, **options: object
) -> tuple[Path, ExportReport]:
    """export_onnx(ckpt, <fresh dir>/model.onnx, **options), once per (weights, options)."""
    meta = ckpt.metadata  # seeded XS weights equal the fabricated release's: key on provenance
    key = (meta.weights_sha256, meta.weights, meta.source_sha256, tuple(sorted(options.items())))
    if key not in _EXPORTS:
        directory = tmp_path_factory.mktemp(f"onnx_{ckpt.spec.name}")
        out = directory / f"{ckpt.spec.name}.onnx"
        _EXPORTS[key] = (out, export_onnx(ckpt, out, **options))  # type: ignore[arg-type]
    return _EXPORTS[key]
