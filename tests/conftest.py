"""Shared, session-scoped fixtures: fabricated releases, checkpoints and ONNX exports are built
once per test run. Tests treat what they get as read-only (copy a file before editing it)."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from converter.checkpoints.canonical import CanonicalCheckpoint, load_checkpoint, random_checkpoint
from converter.checkpoints.fabricate import fabricate_release
from converter.core.variants import get_variant
from converter.export.exporter import ExportReport, export_onnx
from converter.export.options import ExportOptions

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One process per core (just test runs pytest -n 2): each keeps to one PyTorch thread and one
    # onnxruntime intra-op thread, or two workers' thread pools (onnxruntime's spin between runs)
    # would contend for the same cores. A session given threads= still gets what it asks for.
    import onnxruntime

    class _OneThreadSessionOptions(onnxruntime.SessionOptions):
        def __init__(self) -> None:
            super().__init__()
            self.intra_op_num_threads = 1

    torch.set_num_threads(1)
    onnxruntime.SessionOptions = _OneThreadSessionOptions


def _cuda_usable() -> bool:
    import onnxruntime as ort

    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``cuda`` test skips before its fixtures are built (they cost exports on a CPU box)."""
    if item.get_closest_marker("cuda") is not None and not _cuda_usable():
        pytest.skip("needs torch CUDA and onnxruntime's CUDAExecutionProvider")


TESTS = Path(__file__).resolve().parent


def _needs_a_shared_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture of this suite that is built once per module or per run."""
    info = getattr(item, "_fixtureinfo", None)  # pytest keeps a test's fixture definitions here
    if info is None:
        return False
    used = [defs[-1] for defs in info.name2fixturedefs.values() if defs]  # the last overrides
    return any(d.scope != "function" and TESTS in Path(d.func.__code__.co_filename).parents
               for d in used)  # fmt: skip


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Under `just test` (xdist worksteal) each worker gets one contiguous share of the items, and
    one that runs out steals the last half of the busiest one's queue, again as it runs out. The
    shares are laid out so that what a steal takes first are tests that need no module fixture
    its victim builds (an int8 export: seconds): the modules whose tests use shared fixtures go
    whole to the front of the share with the fewest such tests so far (largest module first);
    the tests without them fill each share after them. After every other plugin has selected
    and ordered the items (-k, -m, --deselect, --lf), and the same on every worker, as xdist
    requires. A share whose modules outnumber its size ends inside a module (whose fixtures are
    then built on both workers, as without this layout)."""
    result = yield
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return result
    by_module: dict[str, list[pytest.Item]] = {}
    free: list[pytest.Item] = []
    for item in items:
        if _needs_a_shared_fixture(item):
            by_module.setdefault(item.nodeid.split("::")[0], []).append(item)
        else:
            free.append(item)
    share_of: dict[str, int] = {}
    held_counts = [0] * workers
    for module in sorted(by_module, key=lambda name: -len(by_module[name])):
        share_of[module] = held_counts.index(min(held_counts))
        held_counts[share_of[module]] += len(by_module[module])
    # xdist's shares: the first worker gets len // workers items, the next of what is left, ...
    ordered: list[pytest.Item] = []
    for share in range(workers):
        held = [item for module in by_module if share_of[module] == share
                for item in by_module[module]]  # fmt: skip
        size = (len(items) - len(ordered)) // (workers - share)
        fill = len(free) if share == workers - 1 else max(0, size - len(held))
        ordered += held + free[:fill]
        del free[:fill]
    items[:] = ordered
    return result


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


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """synthetic_set("reference" | "kaggle") -> the synthetic Human3.6M set in that layout,
    written once per worker (93 frames: about a second). Read-only: copy what a test edits."""
    from converter.h36m.synthetic import make_synthetic_h36m

    cache: dict[str, Path] = {}

    def get(layout: str) -> Path:
        if layout not in cache:
            root = tmp_path_factory.mktemp(f"h36m_{layout}") / "h36m"
            make_synthetic_h36m(root, layout)
            cache[layout] = root
        return cache[layout]

    return get


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every xdist worker sees (each has its own basetemp inside
    the run's): what one worker built there, another reads instead of building it again."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class ExportCache:
    """Checkpoints and exports several test modules need; an export costs seconds on 2 cores.

    Exports are shared by the run's workers: the first to need one builds it under a file lock,
    the others wait for it or read it (its report pickled beside it: the tests' own objects)."""

    def __init__(
        self, tmp_path_factory: pytest.TempPathFactory, release_file: Callable[[str], Path]
    ) -> None:
        self._tmp = tmp_path_factory
        self._shared = _run_folder(tmp_path_factory) / "shared-exports"
        self._shared.mkdir(exist_ok=True)
        self._release_file = release_file
        self._checkpoints: dict[tuple[str, str, int], CanonicalCheckpoint] = {}
        self._exports: dict[tuple, tuple[Path, ExportReport]] = {}

    def release_checkpoint(self, variant: str) -> CanonicalCheckpoint:
        """The canonicalized fabricated release (its weights are seeded_state_dict(spec, 0))."""
        key = ("release", variant, 0)
        if key not in self._checkpoints:
            self._checkpoints[key] = load_checkpoint(self._release_file(variant))
        return self._checkpoints[key]

    def seeded_checkpoint(self, variant: str, seed: int) -> CanonicalCheckpoint:
        key = ("random", variant, seed)
        if key not in self._checkpoints:
            self._checkpoints[key] = random_checkpoint(get_variant(variant), seed)
        return self._checkpoints[key]

    def exported(self, ckpt: CanonicalCheckpoint, **options: object) -> tuple[Path, ExportReport]:
        """export_onnx(ckpt, <fresh dir>/model.onnx, **options), once per (weights, options)."""
        meta = ckpt.metadata  # seeded XS weights equal the fabricated release's: key on provenance
        key = (
            meta.weights_sha256,
            meta.weights,
            meta.source_sha256,
            tuple(sorted(options.items())),
        )
        if key not in self._exports:
            folder = self._shared / hashlib.sha256(repr(key).encode()).hexdigest()[:20]
            out, saved = folder / f"{ckpt.spec.name}.onnx", folder / "report.pickle"
            with FileLock(f"{folder}.lock"):
                if saved.is_file():
                    report = pickle.loads(saved.read_bytes())
                else:
                    folder.mkdir(exist_ok=True)
                    report = export_onnx(ckpt, out, ExportOptions(**options))  # type: ignore[arg-type]
                    saved.write_bytes(pickle.dumps(report))
            self._exports[key] = (out, report)
        return self._exports[key]


@pytest.fixture(scope="session")
def onnx_cache(
    tmp_path_factory: pytest.TempPathFactory, release_file: Callable[[str], Path]
) -> ExportCache:
    return ExportCache(tmp_path_factory, release_file)
