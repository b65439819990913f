"""Wall time of the front-page commands against importing what they cannot avoid.

The bars: `cnp-convert onnx --variant XS` and `cnp-convert variants` each finish within 2 s of
`python -c "import torch, onnx, onnxruntime"`, and `--version` within 0.3 s of `python -c pass`
(it imports none of them; nor do the help pages), on the same machine. The commands run
interleaved (A, B, C, A, B, C, ...) so that drift on a shared machine hits them alike; each is a
fresh process, as a user's would be. Medians, and each command's median minus its baseline (the
import; `python -c pass` for --version and the help pages).

    python benchmarks/cli_latency.py --rounds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def commands(out: Path) -> dict[str, list[str]]:
    cli = str(BIN / "cnp-convert")
    imports = "import torch, onnx, onnxruntime"
    return {
        imports: [sys.executable, "-c", imports],
        "cnp-convert onnx --variant XS": [
            cli, "--quiet", "onnx", "--variant", "XS", "-o", str(out), "--force",
        ],
        "cnp-convert variants": [cli, "variants"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "cnp-convert --version": [cli, "--version"],
        "cnp-convert --help": [cli, "--help"],
        "cnp-convert onnx --help": [cli, "onnx", "--help"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = commands(Path(tmp) / "xs.onnx")
        seconds: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(args.rounds):
            for label, argv in runs.items():
                started = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ)
                seconds[label].append(time.perf_counter() - started)
    base = statistics.median(seconds["import torch, onnx, onnxruntime"])
    bare = statistics.median(seconds["python -c pass"])
    print("| command | median s | min s | max s | minus its baseline |")
    print("|---|---|---|---|---|")
    for label, values in seconds.items():
        median = statistics.median(values)
        light = label.endswith("--help") or label.endswith("--version") or label.endswith("pass")
        print(
            f"| `{label}` | {median:.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{median - (bare if light else base):+.2f} |"
        )
    print(f"{args.rounds} interleaved rounds, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
