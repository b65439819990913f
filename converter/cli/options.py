"""The options several commands share, declared once: --variant, --json, --device, --runtime,
--ov-precision, --seed, --force, and the --checkpoint / --variant pair's meaning.

Each function returns the Typer default for one parameter, so a command writes
``as_json: bool = json_option()``; the library's option names are these flags' names with
underscores (converter.cli.app.flag turns an options field back into its flag).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from ..core.errors import UsageError
from ..core.variants import get_variant
from .app import warn
from .choices import DEFAULT_DEVICE, VARIANT_METAVAR

if TYPE_CHECKING:
    from ..checkpoints.canonical import CanonicalCheckpoint

# Help text is Rich markup: brackets are escaped, or "[openvino]" would vanish as a tag.
RUNTIME_HELP = escape(
    'onnxruntime, openvino (CPU; pip install "cnp-convert[openvino]"), opencv (OpenCV DNN, '
    'CPU) or tflite (onnx2tf converts, LiteRT runs, CPU; pip install "cnp-convert[tflite]"). '
    "The verdict follows the precision the runtime reports it computes in."
)
OV_PRECISION_HELP = (
    "openvino: auto (its own choice: bf16 on CPUs with AMX/AVX-512 BF16, judged by the bf16 pose "
    "budget), f32 (judged by the fp32 floor rule) or bf16."
)
DEVICE_HELP = "auto: CUDA where both PyTorch and the graph's runtime really run it, else CPU."
SEED_HELP = "Seed of the verdict's inputs (default: a fresh one, printed; give it to repeat a run)."
ATOL_HELP = (
    "fp32: a fixed limit on coords (heatmap units) instead of the floor rule "
    "(docs/flow.md, Parity verdicts). Positive and finite."
)
RUNTIME_PANEL = "Runtime"
VERDICT_PANEL = "Verdict"
OUTPUT_PANEL = "Output"


def variant_option(help: str) -> Any:
    return typer.Option(None, "--variant", case_sensitive=False, metavar=VARIANT_METAVAR, help=help)


def json_option(help: str = "Print JSON instead of text.") -> Any:
    return typer.Option(False, "--json", help=help, rich_help_panel=OUTPUT_PANEL)


def force_option(help: str = "Replace an existing output file.") -> Any:
    return typer.Option(False, "--force", help=help, rich_help_panel=OUTPUT_PANEL)


def device_option(help: str = DEVICE_HELP) -> Any:
    return typer.Option(
        DEFAULT_DEVICE, "--device", case_sensitive=False, help=help, rich_help_panel=RUNTIME_PANEL
    )


def runtime_option() -> Any:
    return typer.Option(
        "onnxruntime",
        "--runtime",
        case_sensitive=False,
        help=RUNTIME_HELP,
        rich_help_panel=RUNTIME_PANEL,
    )


def ov_precision_option() -> Any:
    return typer.Option(
        "auto",
        "--ov-precision",
        case_sensitive=False,
        help=OV_PRECISION_HELP,
        rich_help_panel=RUNTIME_PANEL,
    )


def seed_option() -> Any:
    return typer.Option(None, "--seed", help=SEED_HELP, rich_help_panel=VERDICT_PANEL)


TIMEOUT_HELP = (
    "Seconds one forward pass may take before it is stopped (exit 2; default: 120 + 30 per "
    "image of the batch)."
)


def timeout_option() -> Any:
    return typer.Option(None, "--timeout", help=TIMEOUT_HELP, rich_help_panel=RUNTIME_PANEL)


def atol_option() -> Any:
    return typer.Option(None, "--atol", help=ATOL_HELP, rich_help_panel=VERDICT_PANEL)


def checkpoint_or_random(checkpoint: Path | None, variant: str | None) -> CanonicalCheckpoint:
    """--checkpoint (checked against --variant), or --variant alone: seeded random weights."""
    from ..checkpoints.canonical import load_checkpoint, random_checkpoint

    if checkpoint is not None:
        return load_checkpoint(checkpoint, variant)
    if variant is None:
        raise UsageError("give --checkpoint CKPT, or --variant V for seeded random weights")
    spec = get_variant(variant)
    warn(
        f"no --checkpoint: ConvNeXtPose-{spec.name} with seeded RANDOM weights (seed 0); "
        "fine for graph inspection and benchmarks, meaningless for poses"
    )
    return random_checkpoint(spec, seed=0)


def parse_batch_list(text: str | None) -> tuple[int, ...] | None:
    """'1,4' -> (1, 4); the sizes themselves are checked by the job's options value."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--batch takes sizes like 1,4, not {text!r}") from None
