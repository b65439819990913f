"""Which parts of the network carry a reduced precision's pose error: a sensitivity sweep.

    python benchmarks/precision_sweep.py --precision int8 [--checkpoint CKPT] [--out DIR]
    python benchmarks/precision_sweep.py --precision bf16
    python benchmarks/precision_sweep.py --budgets [--seeds 1 2 3]

--budgets measures what each shipped recipe does (fp16, int8 as `onnx --precision int8` builds
it, int8 of every layer, OpenVINO bf16 of the fp32 graph) on the real photo crops and on drawn
figures (the synthetic set, 32 frames per seed), and times each against the fp32 graph in the same
run (one thread, batch 1 and 8, interleaved, median of 15 after 3 warm-ups).

The fp32 graph is exported by the tool; its Conv nodes are grouped into blocks (the stem, each
downsampling layer, each backbone block, each head block, the final conv). For every block the
sweep measures the pose change against PyTorch fp32 on the real photo crops (the verdict's) with

- only that block in the low precision ("alone"), and
- everything but that block in the low precision ("all but").

int8 uses the tool's quantizer (QDQ, per-channel weights, calibrated on augmented crops of the
photos drawn apart from the verdict's); bf16 is OpenVINO's CPU plugin with the blocks kept in
f32 marked by ``disable_fp16_compression``, which the plugin also honours for bf16. Default
checkpoint: the released XS.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnp_convert.checkpoints.canonical import load_checkpoint
from cnp_convert.checkpoints.released import load_released
from cnp_convert.export.exporter import (
    build_loaded_model,
    export_onnx,
)
from cnp_convert.export.options import ExportOptions
from cnp_convert.export.precision import calibration_set_from_photos, quantize_int8
from cnp_convert.h36m.metrics import eval_joint_indices
from cnp_convert.h36m.photos import photo_crops
from cnp_convert.runtimes.sessions import open_onnx_session
from cnp_convert.verdicts.judge import crops_to_mm
from cnp_convert.verdicts.parity import pose_change
from cnp_convert.verdicts.tolerances import POSE_BUDGETS

_BLOCK = re.compile(
    r"/(backbone/downsample_layers\.\d|backbone/stages\.\d/stages\.\d\.\d|head/deconv_layers_\d"
    r"|head/final_layer)"
)


def conv_blocks(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Block name -> its node names (every node whose name carries the block's path)."""
    blocks: dict[str, list[str]] = {}
    for node in model.graph.node:
        found = _BLOCK.search(node.name)
        if found:
            key = found.group(1).replace("backbone/", "").split("/")[-1]
            blocks.setdefault(key, []).append(node.name)
    return blocks


def run_graph(path: Path, images: np.ndarray, runtime: str, keep_f32: tuple[str, ...] = ()):
    if runtime == "onnxruntime":
        session = open_onnx_session(path, "cpu")
        return np.concatenate(
            [session.run(images[i : i + 8])["coords"] for i in range(0, len(images), 8)]
        )
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    keep = set(keep_f32)
    for op in model.get_ops():
        if op.get_friendly_name() in keep:
            op.get_rt_info()["disable_fp16_compression_0"] = ""
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    request = compiled.create_infer_request()
    out = []
    for i in range(0, len(images), 8):
        out.append(np.array(request.infer({0: images[i : i + 8]})[compiled.outputs[0]]))
    return np.concatenate(out)


def _timed(runners: dict, rounds: int = 18, warm: int = 3) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {k: float(np.median(v[warm:])) * 1000 for k, v in times.items()}


def budgets(ckpt, seeds: list[int]) -> None:
    """Each recipe's pose change on photos and drawn figures, and its speed against fp32."""
    import onnxruntime as ort

    from cnp_convert.h36m.synthetic import synthetic_crops
    from cnp_convert.verdicts.tolerances import pose_budget

    spec = ckpt.spec
    model = build_loaded_model(ckpt)
    sets = [photo_crops(spec)] + [synthetic_crops(spec, 32, seed) for seed in seeds]
    with torch.no_grad():
        references = [model(torch.from_numpy(c.images)).double().numpy() for c in sets]
    joints = eval_joint_indices(spec.joint_names)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, precision in (("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8")):
            paths[name] = Path(tmp) / f"{name}.onnx"
            export_onnx(ckpt, paths[name], ExportOptions(precision=precision, seed=0))
        proto = onnx.load(str(paths["fp32"]))
        everything, _ = quantize_int8(proto, calibration_set_from_photos(spec), spec, keep_float=())
        paths["int8, every layer"] = Path(tmp) / "int8_all.onnx"
        onnx.save(everything, str(paths["int8, every layer"]))
        cases = [(k, "onnxruntime", k.split(",")[0]) for k in paths if k != "fp32"]
        cases.append(("bf16 (OpenVINO, fp32 graph)", "openvino", "bf16"))
        print("| recipe | photos: mean / p95 / worst mm | drawn figures (seeds "
              f"{', '.join(map(str, seeds))}): mean / p95 / worst mm |\n|---|---|---|")  # fmt: skip
        for label, runtime, precision in cases:
            path = paths["fp32"] if runtime == "openvino" else paths[label]
            cells = []
            for crops, reference in zip(sets, references, strict=True):
                coords = run_graph(path, crops.images, runtime)
                change = pose_change(
                    crops_to_mm(reference, crops, spec), crops_to_mm(coords, crops, spec),
                    joints, spec.joint_names, precision=precision, source=crops.source,
                    budget=pose_budget(precision, drawn=crops.drawn),
                )  # fmt: skip
                mark = "" if change.passed else " (over)"
                cells.append(
                    f"{change.mean_mm:.2f} / {change.p95_mm:.2f} / {change.worst_mm:.1f}{mark}"
                )
            print(f"| {label} | {cells[0]} | {'; '.join(cells[1:])} |", flush=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        sessions = {
            k: ort.InferenceSession(str(v), options, providers=["CPUExecutionProvider"])
            for k, v in paths.items()
        }
        import openvino as ov

        compiled = ov.Core().compile_model(
            str(paths["fp32"]), "CPU",
            {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1},
        )  # fmt: skip
        request = compiled.create_infer_request()
        for batch in (1, 8):
            image = sets[0].images[:batch]
            runners = {
                k: (lambda s=s, x=image: s.run(None, {"image": x})) for k, s in sessions.items()
            }
            runners["bf16 (OpenVINO)"] = lambda x=image: request.infer({0: x})
            medians = _timed(runners)
            print(f"batch {batch}, one thread: " + ", ".join(
                f"{k} {v:.1f} ms ({v / medians['fp32']:.2f}x)" for k, v in medians.items()
            ), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("int8", "bf16"))
    parser.add_argument("--budgets", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else load_released()
    if args.budgets:
        budgets(ckpt, args.seeds)
        return
    if args.precision is None:
        parser.error("give --precision int8|bf16 or --budgets")
    spec = ckpt.spec
    crops = photo_crops(spec)
    with torch.no_grad():
        model = build_loaded_model(ckpt)
        reference = model(torch.from_numpy(crops.images)).double().numpy()
    ref_mm = crops_to_mm(reference, crops, spec)
    joints = eval_joint_indices(spec.joint_names)

    def change(coords: np.ndarray):
        return pose_change(
            ref_mm, crops_to_mm(coords, crops, spec), joints, spec.joint_names,
            precision=args.precision, source=crops.source, budget=POSE_BUDGETS[args.precision],
        )  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(ckpt, fp32, ExportOptions(seed=0))
        proto = onnx.load(str(fp32))
        blocks = conv_blocks(proto)
        every = [n for names in blocks.values() for n in names]
        rows = []
        calibration = calibration_set_from_photos(spec) if args.precision == "int8" else None

        def measure(label: str, low: list[str]) -> None:
            if args.precision == "int8":
                quantized, _ = quantize_int8(
                    proto, calibration, spec, keep_float=(), only=tuple(low)
                )
                path = Path(tmp) / "q.onnx"
                onnx.save(quantized, str(path))
                coords = run_graph(path, crops.images, "onnxruntime")
            else:
                keep = tuple(n for n in every if n not in set(low))
                coords = run_graph(fp32, crops.images, "openvino", keep)
            result = change(coords)
            rows.append({"case": label, "mean_mm": result.mean_mm, "p95_mm": result.p95_mm,
                         "worst_mm": result.worst_mm})  # fmt: skip
            print(
                f"| {label} | {result.mean_mm:.2f} | {result.p95_mm:.2f} | {result.worst_mm:.1f} |",
                flush=True,
            )

        print(f"| {args.precision} in | mean mm | p95 mm | worst mm |\n|---|---|---|---|")
        measure("every block", every)
        for name, nodes in blocks.items():
            measure(f"{name} alone", nodes)
        for name, nodes in blocks.items():
            measure(f"all but {name}", [n for n in every if n not in set(nodes)])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"sweep_{args.precision}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
