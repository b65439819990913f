"""Which parts of the network carry a reduced precision's pose error: a sensitivity sweep.

    python benchmarks/precision_sweep.py --precision int8 [--checkpoint CKPT] [--out DIR]
    python benchmarks/precision_sweep.py --precision bf16

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
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converter.checkpoints.canonical import load_checkpoint
from converter.checkpoints.released import load_released
from converter.export.exporter import (
    build_loaded_model,
    export_onnx,
)
from converter.export.precision import calibration_set_from_photos, quantize_int8
from converter.h36m.metrics import eval_joint_indices
from converter.h36m.photos import photo_crops
from converter.verdicts.judge import crops_to_mm
from converter.verdicts.parity import pose_change
from converter.verdicts.runtime import open_onnx_session
from converter.verdicts.tolerances import POSE_BUDGETS

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("int8", "bf16"), required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else load_released()
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
        export_onnx(ckpt, fp32, seed=0)
        proto = onnx.load(str(fp32))
        blocks = conv_blocks(proto)
        every = [n for names in blocks.values() for n in names]
        rows = []
        calibration = calibration_set_from_photos(spec) if args.precision == "int8" else None

        def measure(label: str, low: list[str]) -> None:
            if args.precision == "int8":
                quantized, _ = quantize_int8(proto, calibration, only=tuple(low))
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
