"""Shared, session-scoped fixtures: fabricated release files are built once per test run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from converter.fabricate import fabricate_release


@pytest.fixture(scope="session")
def release_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """release_file("L") -> path of a fabricated ConvNeXtPose_L.tar (built once, read-only use)."""
    cache: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in cache:
            directory = tmp_path_factory.mktemp(f"release_{variant}")
            cache[variant] = fabricate_release(variant, directory)
        return cache[variant]

    return get
