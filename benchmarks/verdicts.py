"""Specificity and sensitivity of the fp32 verdict, measured (not a test; minutes of CPU).

    python benchmarks/verdicts.py specificity --variants XS,S,M,L --seeds 101-105
    python benchmarks/verdicts.py sensitivity --variants XS,S,M,L --seed 101
    python benchmarks/verdicts.py budgets --frames 93
    python benchmarks/verdicts.py stability --variants XS,S,M,L --seeds 201-212 --verify-seeds 5
    python benchmarks/verdicts.py spread --variants L,XS --seed 201 --verify-seeds 20

stability: checkpoints made like the released files, each exported twice (the default graph and
the literal one, --no-rewrite; built without the export verdict) and verified with several
fresh seeds each: every verdict must pass (false refusals), and the table gives, per variant and
graph, the limits' range and the largest error / limit. spread: one checkpoint verified with
many seeds: the ratio of its largest to smallest limit. table: the markdown table of every
stability_*.json under --out (docs/flow.md, "Parity verdicts"). sum-bound: the softmax sum's
rounding bound (parity.softmax_sum_allowance's relative part) against a sequential float32 sum's
real error, on softmax volumes of 64^3 cells with logits of several spreads.

specificity: checkpoints made like the released files (fabricate's recipe) with seeds other than
its default, each exported by `export_onnx` (the export-time verdict) and checked by
`verify_onnx` with a fresh seed: every one must pass. Also prints, per checkpoint, the fp32
floor, onnxruntime's error against float64 and their ratio: the data FLOOR_FACTOR rests on.

sensitivity: per variant, the smallest perturbation the verdict catches, found by bisection on
eps: one conv's weights scaled by 1+eps, one BatchNorm's running mean shifted by eps x its
running std, and (discrete) one channel of a head conv zeroed, plus other seeds' weights. The
candidate is the perturbed model in PyTorch fp32, judged against the unperturbed float64
reference with the floor of the unperturbed fp32 model, i.e. exactly verify's rule.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import unverified_graph  # noqa: E402  (the sibling script)

from cnp_convert.checkpoints.canonical import (  # noqa: E402
    CanonicalCheckpoint,
    build_loaded_model,
    random_checkpoint,
    weights_digest,
)
from cnp_convert.checkpoints.released import load_released  # noqa: E402
from cnp_convert.core.variants import get_variant  # noqa: E402
from cnp_convert.export.exporter import build_graph, export_onnx  # noqa: E402
from cnp_convert.export.options import ExportOptions  # noqa: E402
from cnp_convert.h36m.synthetic import synthetic_crops  # noqa: E402
from cnp_convert.runtimes.openvino_session import OpenVinoSession  # noqa: E402
from cnp_convert.runtimes.sessions import open_onnx_session  # noqa: E402
from cnp_convert.verdicts.judge import (  # noqa: E402
    ParityFailedError,
    _float64_outputs,
    float64_reference,
    floor_outputs,
    run_pose_verdict,
    verdict_images,
)
from cnp_convert.verdicts.parity import (  # noqa: E402
    UNIT_ROUNDOFF_FP32,
    judge_output,
    softmax_sum_terms,
)
from cnp_convert.verdicts.tolerances import (  # noqa: E402
    NORMALIZER_LAMBDA,
    POSE_BUDGETS,
    PRECISIONS,
    fp32_limits,
)
from cnp_convert.verdicts.verify import VerifyOptions, verify_onnx  # noqa: E402

CPU = torch.device("cpu")
# (judged precision, runtime, graph precision)
BUDGET_CASES = (
    ("fp16", "onnxruntime", "fp16"),
    ("int8", "onnxruntime", "int8"),
    ("bf16", "openvino", "fp32"),
    ("int8", "openvino", "int8"),
)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = (int(v) for v in text.split("-"))
        return list(range(low, high + 1))
    return [int(v) for v in text.split(",")]


def sharpened(ckpt: CanonicalCheckpoint, factor: float) -> CanonicalCheckpoint:
    """The same checkpoint with its final conv (the heatmap logits) scaled by factor.

    Trained networks have peaked heatmaps: large logits make the softmax, and so the fp32
    floor, far more sensitive than fabricate's calibrated logit std of 4 does.
    """
    if factor == 1.0:
        return ckpt
    state = dict(ckpt.state_dict)
    for key in ("head.final_layer.weight", "head.final_layer.bias"):
        state[key] = state[key] * factor
    metadata = dataclasses.replace(ckpt.metadata, weights_sha256=weights_digest(state))
    return dataclasses.replace(ckpt, state_dict=state, metadata=metadata)


def specificity(
    variants: list[str], seeds: list[int], sharpness: list[float], out: Path
) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed, factor in itertools.product(variants, seeds, sharpness):
            ckpt = sharpened(random_checkpoint(get_variant(name), seed), factor)
            path = Path(tmp) / f"{name}_{seed}.onnx"
            row: dict = {"variant": name, "seed": seed, "logit_scale": factor}
            started = time.perf_counter()
            try:
                report = export_onnx(ckpt, path, ExportOptions(seed=seed * 7 + 1))
                coords = report.parity[0].output("coords")
                row.update(export="pass", floor=coords.floor, error=coords.error)
            except ParityFailedError as exc:
                coords = exc.report.parity[0].output("coords")
                row.update(export="REFUSED", floor=coords.floor, error=coords.error)
            row["export_s"] = round(time.perf_counter() - started, 1)
            if path.exists():
                try:
                    verified = verify_onnx(path, ckpt, VerifyOptions(device="cpu"))
                    entry = verified.results[0].output("coords")
                    row.update(verify="pass", verify_floor=entry.floor, verify_error=entry.error)
                except ParityFailedError as exc:
                    entry = exc.report.results[0].output("coords")
                    row.update(verify="REFUSED", verify_floor=entry.floor, verify_error=entry.error)
                path.unlink()
            row["ratio"] = row["error"] / row["floor"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    tag = "_".join(f"{s:g}" for s in sharpness)
    (out / f"specificity_{'_'.join(variants)}_x{tag}.json").write_text(json.dumps(rows, indent=1))
    return rows


def _perturbations(state: dict[str, torch.Tensor]):
    """name -> function(eps) returning a perturbed copy of the state dict."""

    def scaled(key: str):
        def make(eps: float) -> dict:
            new = dict(state)
            new[key] = state[key] * (1.0 + eps)
            return new

        return make

    def bn_shift(prefix: str):
        def make(eps: float) -> dict:
            new = dict(state)
            std = state[prefix + ".running_var"].clamp(min=0).sqrt()
            new[prefix + ".running_mean"] = state[prefix + ".running_mean"] + eps * std
            return new

        return make

    return {
        "backbone pwconv x(1+eps)": scaled("backbone.stages.2.1.pwconv1.weight"),
        "head final conv x(1+eps)": scaled("head.final_layer.weight"),
        "BN running mean +eps*std": bn_shift("backbone.stages.1.0.norm"),
    }


def _sensitivity_of(name: str, seed: int) -> list[dict]:
    spec = get_variant(name)
    ckpt = random_checkpoint(spec, seed)
    model = build_loaded_model(ckpt)
    reference = float64_reference(model)
    images = verdict_images(spec, 8, seed)
    # verify's rule for the default graph (coords divided by their mass): its floor, and the
    # candidate computed the same way (PyTorch fp32, soft-argmax by moments)
    ref64 = _float64_outputs(reference, images, False)["coords"]
    fp32 = floor_outputs(model, images, CPU, False)["coords"]
    limit = fp32_limits(("coords",), divided_by_mass=True)["coords"]
    errors = np.abs(fp32 - ref64)
    floor = float(np.sqrt(np.mean(errors**2)))
    bound = limit.value(floor, float(errors.max()))

    def judge(state: dict) -> tuple[bool, float]:
        candidate = copy.deepcopy(model)
        candidate.load_state_dict(state)
        coords = floor_outputs(candidate, images, CPU, False)["coords"]
        entry = judge_output("coords", ref64, fp32, coords, limit, spec)
        return entry.passed, entry.error

    rows: list[dict] = []
    for label, make in _perturbations(ckpt.state_dict).items():
        low, high = 1e-8, 1.0  # passes at low, fails at high (checked)
        if judge(make(high))[0] or not judge(make(low))[0]:
            rows.append({"variant": name, "perturbation": label, "eps": None})
            continue
        for _ in range(30):
            middle = float(np.sqrt(low * high))
            if judge(make(middle))[0]:
                low = middle
            else:
                high = middle
        caught = all(not judge(make(high * f))[0] for f in (1.0, 2.0, 10.0, 100.0))
        rows.append({"variant": name, "perturbation": label, "smallest_eps_caught": high,
                     "caught_above": caught, "floor": floor, "limit": bound})  # fmt: skip
    zeroed = dict(ckpt.state_dict)
    weight = zeroed["head.deconv_layers_1.pwconv.weight"].clone()
    weight[0] = 0.0
    zeroed["head.deconv_layers_1.pwconv.weight"] = weight
    passed, error = judge(zeroed)
    rows.append({"variant": name, "perturbation": "one head channel zeroed", "caught": not passed,
                 "error": error, "limit": bound})  # fmt: skip
    for other in (seed + 1000, seed + 2000):
        passed, error = judge(random_checkpoint(spec, other).state_dict)
        rows.append({"variant": name, "perturbation": f"weights of seed {other}",
                     "caught": not passed, "error": error, "limit": bound})  # fmt: skip
    return rows


def sensitivity(variants: list[str], seed: int, out: Path) -> list[dict]:
    rows = []
    for name in variants:
        for row in _sensitivity_of(name, seed):
            print(json.dumps(row), flush=True)
            rows.append(row)
    (out / f"sensitivity_{'_'.join(variants)}.json").write_text(json.dumps(rows, indent=1))
    return rows


def budgets(out: Path, frames: int) -> list[dict]:
    """Pose change of fp16/int8 graphs on the synthetic frames: the data POSE_BUDGETS rest on."""
    cases = [("released XS (the authors')", load_released())]
    cases += [(f"fabricated {v} seed 0", random_checkpoint(get_variant(v), 0)) for v in ("XS", "L")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, ckpt in cases:
            crops = synthetic_crops(ckpt.spec, frames, 0)
            model = build_loaded_model(ckpt)
            graphs = {p: unverified_graph(ckpt, p, Path(tmp) / f"{p}.onnx") for p in PRECISIONS}
            for precision, runtime, graph_precision in BUDGET_CASES:
                if runtime == "onnxruntime":
                    session = open_onnx_session(graphs[graph_precision], "cpu")
                else:  # OpenVINO's own execution precision: bf16 on AMX, or f32 when asked
                    ov_precision = "bf16" if precision == "bf16" else "auto"
                    session = OpenVinoSession(graphs[graph_precision], precision=ov_precision)
                for batch in (1, 8):
                    change = run_pose_verdict(
                        model, session, crops, batch, precision=precision,
                        budget=POSE_BUDGETS[precision], torch_device=CPU, spec=ckpt.spec,
                    )  # fmt: skip
                    row = {"weights": label, "runtime": runtime, **change.to_dict()}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    (out / "budgets.json").write_text(json.dumps(rows, indent=1))
    return rows


def _verdicts_of(ckpt, rewrites, verify_seeds, tmp: Path, label: dict) -> list[dict]:
    """ckpt's graph (rewrites applied, no export verdict) verified once per seed."""
    path = tmp / "graph.onnx"
    onnx.save(build_graph(ckpt, ExportOptions(rewrites=rewrites)).proto, str(path))
    rows = []
    for seed in verify_seeds:
        row = {**label, "graph": "default" if rewrites else "literal", "verify_seed": seed}
        try:
            report = verify_onnx(path, ckpt, VerifyOptions(device="cpu", seed=seed))
            row["verdict"] = "pass"
        except ParityFailedError as exc:
            report, row["verdict"] = exc.report, "REFUSED"
        entries = [r.output("coords") for r in report.results]
        row.update(
            error=max(e.error for e in entries),
            max_error=max(e.error if e.max_error is None else e.max_error for e in entries),
            floor=max(e.floor for e in entries),
            limit=min(e.limit for e in entries),
            ratio=max(e.error / e.limit for e in entries),
        )
        print(json.dumps(row), flush=True)
        rows.append(row)
    path.unlink()
    return rows


def stability(
    variants: list[str], seeds: list[int], sharpness: list[float], verify_seeds: list[int],
    out: Path,
) -> list[dict]:  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed, factor in itertools.product(variants, seeds, sharpness):
            ckpt = sharpened(random_checkpoint(get_variant(name), seed), factor)
            label = {"variant": name, "seed": seed, "logit_scale": factor}
            for rewrites in (ExportOptions().rewrites, ()):
                rows += _verdicts_of(ckpt, rewrites, verify_seeds, Path(tmp), label)
    tag = f"{'_'.join(variants)}_{seeds[0]}-{seeds[-1]}_x{'_'.join(f'{s:g}' for s in sharpness)}"
    (out / f"stability_{tag}.json").write_text(json.dumps(rows, indent=1))
    return rows


def sum_bound(trials: int = 6) -> list[dict]:
    """Per logit std: the bound over the real relative error of a sequential float32 sum."""
    rng = np.random.default_rng(0)
    rows = []
    for std in (1, 2, 4, 8, 16, 32):
        ratios = []
        for _ in range(trials):
            logits = rng.normal(0.0, std, 64**3)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            terms = p.astype(np.float32)
            exact = terms.astype(np.float64).sum()
            sequential = float(np.cumsum(terms, dtype=np.float32)[-1])  # one accumulator
            mass, count = softmax_sum_terms(p)
            bound = mass + NORMALIZER_LAMBDA["coords"] * UNIT_ROUNDOFF_FP32 * np.sqrt(count)
            ratios.append(bound / max(abs(sequential - exact) / exact, 1e-30))
        rows.append({"logit_std": std, "bound_over_error": [min(ratios), max(ratios)]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(out: Path) -> str:
    """Markdown: per variant, logit scale and graph, the verdicts of the stability runs."""
    rows = [
        row for path in sorted(out.glob("stability_*.json")) for row in json.loads(path.read_text())
    ]
    lines = [
        "| variant | logit scale | graph | checkpoints | verdicts | refused | floor rms | limit"
        " (nearest element) | largest error / limit | limit spread over seeds (max / min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["variant"], row["logit_scale"], row["graph"]), []).append(row)
    order = {name: index for index, name in enumerate(("XS", "S", "M", "L"))}
    for key in sorted(groups, key=lambda k: (order.get(k[0], 9), k[1], k[2])):
        group = groups[key]
        spreads = []
        for seed in {row["seed"] for row in group}:
            limits = [row["limit"] for row in group if row["seed"] == seed]
            spreads.append(max(limits) / min(limits))
        floors, limits = [row["floor"] for row in group], [row["limit"] for row in group]
        lines.append(
            f"| {key[0]} | {key[1]:g} | {key[2]} | {len(spreads)} | {len(group)} | "
            f"{sum(row['verdict'] != 'pass' for row in group)} | "
            f"{min(floors):.2g} – {max(floors):.2g} | {min(limits):.2g} – {max(limits):.2g} | "
            f"{max(row['ratio'] for row in group):.2f} | "
            f"{min(spreads):.2f} – {max(spreads):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what",
        choices=(
            "specificity",
            "sensitivity",
            "budgets",
            "stability",
            "spread",
            "table",
            "sum-bound",
        ),
    )
    parser.add_argument("--verify-seeds", type=int, default=5, help="seeds 1..N per graph")
    parser.add_argument("--frames", type=int, default=93)
    parser.add_argument("--variants", default="XS,S,M,L")
    parser.add_argument("--seeds", default="101-105")
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--logit-scale", default="1", help="comma list, e.g. 1,8")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "verdicts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(",")]
    if args.what == "table":
        print(table(args.out))
    elif args.what == "sum-bound":
        sum_bound()
    elif args.what == "budgets":
        budgets(args.out, args.frames)
    elif args.what == "specificity":
        scales = [float(v) for v in args.logit_scale.split(",")]
        specificity(variants, _seeds(args.seeds), scales, args.out)
    elif args.what in ("stability", "spread"):
        scales = [float(v) for v in args.logit_scale.split(",")]
        seeds = [args.seed] if args.what == "spread" else _seeds(args.seeds)
        stability(variants, seeds, scales, list(range(1, args.verify_seeds + 1)), args.out)
    else:
        sensitivity(variants, args.seed, args.out)


if __name__ == "__main__":
    main()
