"""Latency of onnxruntime against PyTorch eager, measured in one run on the same inputs.

Runs are interleaved (torch, onnx, torch, onnx ... with the order swapped every pair) after a
warm-up, so drift on a shared machine hits both backends alike; the ratio is taken per pair of
runs. On CUDA, onnxruntime runs through I/O binding with the input already on the GPU (timing
excludes host copies), PyTorch's input is on the GPU too and it is synchronized before the clock
is read; TF32 is off on both sides (onnxruntime is asked for strict fp32, so PyTorch is too).

onnxruntime's idle worker threads spin between runs by default. Interleaved with PyTorch that
spinning steals the cores PyTorch needs right after an onnxruntime run, so the benchmark turns it
off by default; alone, onnxruntime is a little faster with it on, so the ratio is a bit
conservative, and ``spinning=True`` measures it anyway (figures: docs/precision_and_speed.md,
"What was tried on the onnxruntime session"). Every timed run follows an untimed run of the
same backend, which absorbs the other library's spin-down (PyTorch's OpenMP threads spin too).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ..checkpoints.canonical import CanonicalCheckpoint, build_loaded_model
from ..core.choices import BENCH_RUNS as DEFAULT_RUNS
from ..core.errors import OptionError, VariantMismatchError
from ..graphs.metadata import read_onnx_metadata
from ..h36m.preprocess import normalize_images, seeded_images
from ..runtimes.doctor import cpu_identity
from ..runtimes.sessions import (
    OnnxSession,
    Session,
    check_runtime,
    open_onnx_session,
    open_session,
    resolve_torch_device,
    strict_fp32,
)
from ..runtimes.watched import check_time_limit
from ..verdicts.verify import MAX_BATCH

BENCH_DEVICES = ("auto", "cpu", "cuda")
DEFAULT_BATCHES = (1, 8)

DEFAULT_WARMUP = 3


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    min_ms: float
    max_ms: float
    fps: float  # images per second at the median

    @classmethod
    def from_seconds(cls, seconds: Sequence[float], batch: int) -> LatencyStats:
        median = statistics.median(seconds)
        return cls(
            median_ms=median * 1e3,
            min_ms=min(seconds) * 1e3,
            max_ms=max(seconds) * 1e3,
            fps=batch / median,
        )


@dataclass(frozen=True)
class Contender:
    """A graph on a runtime, timed beside the main one (e.g. OpenVINO, or the int8 graph)."""

    label: str
    path: Path
    runtime: str = "onnxruntime"
    ov_precision: str = "auto"


@dataclass(frozen=True)
class ContenderTiming:
    label: str
    runtime: str
    providers: tuple[str, ...]
    execution_precision: str | None  # what OpenVINO reports it computes in; None: the graph's
    latency: LatencyStats
    ratio_over_torch: float  # median over rounds of this contender's time / PyTorch's
    speedup: float


@dataclass(frozen=True)
class BenchRow:
    batch: int
    torch: LatencyStats
    onnx: LatencyStats
    ratio_onnx_over_torch: float  # median over pairs of runs; < 1 means onnxruntime is faster
    speedup: float  # 1 / ratio
    others: tuple[ContenderTiming, ...] = ()  # further contenders, timed in the same rounds


@dataclass(frozen=True)
class MachineInfo:
    cpu: str
    cores: int
    gpu: str | None
    system: str
    torch_version: str
    onnxruntime_version: str
    cpu_features: tuple[str, ...] = ()  # the vector / matrix instruction sets the CPU reports

    @classmethod
    def current(cls) -> MachineInfo:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        name, features = cpu_identity()
        return cls(
            cpu=name,
            cpu_features=features,
            cores=os.cpu_count() or 1,
            gpu=gpu,
            system=f"{platform.system()} {platform.machine()}",
            torch_version=torch.__version__,
            onnxruntime_version=ort.__version__,
        )

    def line(self) -> str:
        gpu = f", GPU {self.gpu}" if self.gpu else ", no GPU"
        features = ", ".join(self.cpu_features) or "none of AVX2/AVX-512/AMX"
        return (
            f"{self.cpu} ({features}), {self.cores} cores{gpu} ({self.system}); "
            f"torch {self.torch_version}, onnxruntime {self.onnxruntime_version}"
        )


@dataclass(frozen=True)
class BenchReport:
    model: str
    variant: str
    precision: str
    device: str  # what really ran: "cpu" or "cuda"
    providers: tuple[str, ...]  # onnxruntime's, read back from the session
    torch_device: str
    onnx_threads: int | None  # None: onnxruntime's default (one per physical core)
    torch_threads: int
    spinning: bool
    io_binding: bool
    runs: int
    warmup: int
    machine: MachineInfo
    rows: tuple[BenchRow, ...]
    date: str
    export_seconds: float | None = None  # when the graph was exported for this run
    runtime: str = "onnxruntime"  # what ran the graph (the "onnx" columns)
    execution_precision: str | None = None  # OpenVINO's, read back; None: the graph's own

    def to_dict(self) -> dict:
        return asdict(self)

    def heading(self) -> list[str]:
        """The lines above the timing table: what ran, where and how."""
        threads = self.onnx_threads if self.onnx_threads else "default"
        out = [
            f"bench {self.model} (ConvNeXtPose-{self.variant}, {self.precision}) on {self.device}",
            f"machine: {self.machine.line()}",
            f"{self.runtime} providers {', '.join(self.providers)}; intra-op threads {threads}, "
            f"spinning {'on' if self.spinning else 'off'}"
            + (", I/O binding" if self.io_binding else "")
            + f"; PyTorch eager on {self.torch_device}, {self.torch_threads} threads",
            f"{self.runs} interleaved runs after {self.warmup} warm-up, {self.date}",
        ]
        if self.export_seconds is not None:
            out.append(f"export: {self.export_seconds:.1f} s")
        return out

    def lines(self) -> list[str]:
        out = self.heading()
        out.append(
            f"{'batch':>5} {'torch ms':>9} {'min':>8} {'max':>8} {'onnx ms':>9} {'min':>8} "
            f"{'max':>8} {'torch fps':>10} {'onnx fps':>9} {'onnx/torch':>11}"
        )
        for r in self.rows:
            out.append(
                f"{r.batch:>5} {r.torch.median_ms:>9.2f} {r.torch.min_ms:>8.2f} "
                f"{r.torch.max_ms:>8.2f} {r.onnx.median_ms:>9.2f} {r.onnx.min_ms:>8.2f} "
                f"{r.onnx.max_ms:>8.2f} {r.torch.fps:>10.1f} {r.onnx.fps:>9.1f} "
                f"{r.ratio_onnx_over_torch:>11.3f}  ({speed_words(r.speedup)})"
            )
            for other in r.others:
                out.append(
                    f"{'':>5} {other.label}: {other.latency.median_ms:.2f} ms (min "
                    f"{other.latency.min_ms:.2f}, max {other.latency.max_ms:.2f}), "
                    f"{other.latency.fps:.1f} fps, {other.speedup:.2f}x PyTorch"
                    + (
                        f"; runs in {other.execution_precision}"
                        if other.execution_precision
                        else ""
                    )
                )
        return out


def speed_words(speedup: float) -> str:
    """A speed-up in words that read right both ways: 2.00x faster, 2.44x slower (not 0.41x
    faster)."""
    if speedup >= 1.0:
        return f"{speedup:.2f}x faster"
    return f"{1.0 / speedup:.2f}x slower"


def _torch_runner(model: torch.nn.Module, image: np.ndarray, device: torch.device) -> Callable:
    tensor = torch.from_numpy(image).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run() -> None:
        with torch.inference_mode(), strict_fp32(device):
            model(tensor)
        sync()

    return run


def _onnx_runner(session: Session, image: np.ndarray) -> Callable:
    if session.device != "cuda" or not isinstance(session, OnnxSession):
        return lambda: session.run(image)
    # I/O binding with the input resident on the GPU: no host copies inside the timed region.
    raw = session.raw_session
    binding = raw.io_binding()
    value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(image), "cuda", 0)
    binding.bind_ortvalue_input(session.input_name, value)
    for name in session.output_names:
        binding.bind_output(name, "cuda", 0)

    def run() -> None:
        raw.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def _time(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved_rounds(
    runners: Sequence[Callable[[], object]], runs: int, warmup: int
) -> list[list[float]]:
    """Seconds per run of each runner; every round runs each once, the order rotated by one
    per round (with two runners: swapped every pair).

    Each timed run follows an untimed run of the same backend: the other library's idle
    threads still spin for a moment after it returns, and that settling run absorbs it.
    """
    for _ in range(warmup):
        for run in runners:
            run()
    times: list[list[float]] = [[] for _ in runners]
    count = len(runners)
    for i in range(runs):
        for k in range(count):
            index = (i + k) % count
            runners[index]()
            times[index].append(_time(runners[index]))
    return times


@dataclass(frozen=True)
class BenchOptions:
    """How to time (benchmark's one options value, checked whole when built, before any export
    or model build; field names are the CLI's option names).

    device: auto, cpu or cuda for both sides (auto: CUDA only where PyTorch and every runtime
    really run it). batch: the batch sizes. threads: intra-op threads for every backend (None:
    each library's default). runtime: the runtimes that run the graph, the first against
    PyTorch, the others as contenders in the same rounds; ov_precision: OpenVINO's execution
    precision. spinning: let onnxruntime's idle threads spin. timeout: seconds one forward pass
    may take (None: the default for its batch).
    """

    device: str = "cpu"
    batch: tuple[int, ...] = DEFAULT_BATCHES
    threads: int | None = None
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    spinning: bool = False
    runtime: tuple[str, ...] = ("onnxruntime",)
    ov_precision: str = "auto"
    timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", check_time_limit(self.timeout))
        name = self.device.strip().lower()
        if name not in BENCH_DEVICES:
            raise OptionError(
                "device", f"must be one of {', '.join(BENCH_DEVICES)}, not {self.device!r}"
            )
        object.__setattr__(self, "device", name)
        # verify's bound: inputs and outputs of one batch are held at once, for every backend.
        sizes = tuple(self.batch)
        if not sizes or any(isinstance(b, bool) or not 1 <= int(b) <= MAX_BATCH for b in sizes):
            raise OptionError(
                "batch", f"sizes must be integers from 1 to {MAX_BATCH}, not {list(sizes)}"
            )
        object.__setattr__(self, "batch", tuple(int(b) for b in sizes))
        if self.threads is not None and self.threads < 1:
            raise OptionError("threads", f"must be at least 1, not {self.threads}")
        if self.runs < 1:
            raise OptionError("runs", f"must be at least 1, not {self.runs}")
        if self.warmup < 0:
            raise OptionError("warmup", f"must be at least 0, not {self.warmup}")
        runtimes = tuple(dict.fromkeys(self.runtime))
        if not runtimes:
            raise OptionError("runtime", "names no runtime")
        checked = tuple(check_runtime(r, self.ov_precision, name) for r in runtimes)
        object.__setattr__(self, "runtime", checked)


def _auto_device(path: Path, runtimes: Sequence[str]) -> str:
    """auto: CUDA only where PyTorch and every runtime really run it (as verify decides), so
    the two sides are always timed on the same device."""
    if any(r != "onnxruntime" for r in runtimes) or resolve_torch_device("auto").type == "cpu":
        return "cpu"
    return open_onnx_session(path, "auto").device


def benchmark(
    onnx_path: str | Path,
    ckpt: CanonicalCheckpoint,
    options: BenchOptions | None = None,
    *,
    contenders: Sequence[Contender] = (),
    export_seconds: float | None = None,
    label: str | None = None,
) -> BenchReport:
    """Median/min/max latency of PyTorch and the graph on options.runtime[0] per batch size,
    interleaved in one run (BenchOptions says how; None: the defaults).

    contenders: further graphs or runtimes timed in the same rounds (same inputs, same threads).
    label: how the report names the graph (default: its path).
    """
    options = options if options is not None else BenchOptions()
    name, batches, threads, runs = options.device, options.batch, options.threads, options.runs
    warmup, spinning, runtime = options.warmup, options.spinning, options.runtime[0]
    ov_precision = options.ov_precision
    path = Path(onnx_path)
    meta = read_onnx_metadata(path)
    if meta is not None and meta.variant != ckpt.spec.name:
        raise VariantMismatchError(
            f"{path}: the graph is ConvNeXtPose-{meta.variant}, the checkpoint "
            f"({ckpt.metadata.source_name}) is {ckpt.spec.name}"
        )
    if name == "auto":
        name = _auto_device(path, [runtime, *(c.runtime for c in contenders)])
    torch_device = resolve_torch_device(name)  # cuda without a usable GPU fails here
    session = open_session(
        path, runtime, name, threads, ov_precision=ov_precision, spinning=spinning,
        time_limit_s=options.timeout,
    )  # fmt: skip
    others = [
        (c, open_session(c.path, c.runtime, name, threads, ov_precision=c.ov_precision,
                         spinning=spinning, time_limit_s=options.timeout))
        for c in contenders
    ]  # fmt: skip
    fixed = session.input_shape[0] if isinstance(session.input_shape[0], int) else None
    if fixed is not None and any(int(b) != fixed for b in batches):
        raise OptionError(
            "batch", f"{list(batches)}: {path} has a fixed batch of {fixed}, nothing else runs"
        )
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch_threads = torch.get_num_threads()
        model = build_loaded_model(ckpt).to(torch_device)
        rows = []
        for batch in (int(b) for b in batches):
            image = normalize_images(seeded_images(batch, seed=batch), ckpt.spec)
            torch_s, onnx_s, *other_s = interleaved_rounds(
                [
                    _torch_runner(model, image, torch_device),
                    _onnx_runner(session, image),
                    *(_onnx_runner(other, image) for _, other in others),
                ],
                runs,
                warmup,
            )
            ratio = statistics.median(o / t for o, t in zip(onnx_s, torch_s, strict=True))
            timings = []
            for (contender, other), seconds in zip(others, other_s, strict=True):
                other_ratio = statistics.median(
                    o / t for o, t in zip(seconds, torch_s, strict=True)
                )
                timings.append(
                    ContenderTiming(
                        label=contender.label,
                        runtime=contender.runtime,
                        providers=tuple(other.providers),
                        execution_precision=other.execution_precision,
                        latency=LatencyStats.from_seconds(seconds, batch),
                        ratio_over_torch=other_ratio,
                        speedup=1.0 / other_ratio,
                    )
                )
            rows.append(
                BenchRow(
                    batch=batch,
                    torch=LatencyStats.from_seconds(torch_s, batch),
                    onnx=LatencyStats.from_seconds(onnx_s, batch),
                    ratio_onnx_over_torch=ratio,
                    speedup=1.0 / ratio,
                    others=tuple(timings),
                )
            )
    finally:
        torch.set_num_threads(previous_threads)
    return BenchReport(
        model=label if label is not None else str(path),
        variant=ckpt.spec.name,
        precision=meta.precision if meta is not None else "fp32",
        device=session.device,
        providers=session.providers,
        torch_device=str(torch_device),
        onnx_threads=threads,
        torch_threads=torch_threads,
        spinning=spinning,
        io_binding=session.device == "cuda",
        runs=runs,
        warmup=warmup,
        machine=MachineInfo.current(),
        rows=tuple(rows),
        date=datetime.date.today().isoformat(),
        export_seconds=export_seconds,
        runtime=runtime,
        execution_precision=session.execution_precision,
    )


def bench_graphs(
    graphs: Mapping[str, Path],
    ckpt: CanonicalCheckpoint,
    options: BenchOptions,
    *,
    export_seconds: float | None = None,
    labels: Mapping[str, str] | None = None,
) -> BenchReport:
    """The first graph on the first runtime against PyTorch; every other (graph, runtime) pair
    as a contender in the same rounds. graphs: label -> path, in order; labels: how the report
    names each graph (default: its path)."""
    items = list(graphs.items())
    main_label, main = items[0]
    first = options.runtime[0]
    contenders = [
        Contender(f"{runtime} {label}", path, runtime, options.ov_precision)
        for label, path in items
        for runtime in options.runtime
        if (path, runtime) != (main, first)
    ]
    return benchmark(
        main,
        ckpt,
        options,
        contenders=contenders,
        export_seconds=export_seconds,
        label=(labels or {}).get(main_label),
    )
