"""Every default export on the runtimes users load it in: the table of docs/compatibility.md.

    python benchmarks/compatibility.py run --work DIR [--variants XS,S,M,L]
        [--opencv-dirs DIR ...] [--onnx2torch-dir DIR] [--tflite-python PY] [--tflite]
    python benchmarks/compatibility.py table DIR/results.json

`run` exports each variant as `cnp-convert onnx` does by default (fp32; fp16 and int8 of the
released XS, the only real weights; S, M and L are seeded random weights packaged like the
releases), then judges every graph on every runtime at batch 1 and 3:

- onnxruntime, OpenVINO (f32, and its own default precision) and OpenCV DNN: `cnp-convert verify
  --runtime R --batch 1,3`, the tool's own verdict (exit 0 pass, 1 refused by the verdict, 2 the
  runtime cannot load or run the graph). Each `--opencv-dirs` folder holds one OpenCV release
  installed with `pip install --no-deps --target DIR opencv-python-headless==V`; it is put ahead
  of the installed one on PYTHONPATH, and the version the verdict reports is the one recorded.
- TFLite as the tool makes it (`--tflite`, the `[tflite]` extra installed): `cnp-convert verify
  --runtime tflite`, onnx2tf's float32 file judged on LiteRT by the same verdict, for the fp32
  graphs at opset 18 and 11 (`onnx --target tflite` writes the file only when this passes).
- onnx2torch (`--onnx2torch-dir`, installed the same way) and TFLite (`--tflite-python`, a Python
  with onnx2tf and ai-edge-litert): not runtimes of the tool's verdict. The graph is converted
  with their converter, run on the verdict's seeded images, and compared with onnxruntime's
  output of the same graph, which its own verdict passed; "pass" is within 1e-3 heatmap units
  (the fp32 verdict's limits on these graphs are 6e-4 to 1.4e-3, docs/flow.md). TFLite's
  float16 file (onnx2tf writes both) is run and its difference shown, with no limit.
  onnx2torch 1.5 imports torchvision for its NMS converter; where torchvision cannot be
  installed beside torch (this machine's CPU build), a stand-in module satisfies that import.
  The fp32 graphs are also exported at opset 11 (the TorchScript exporter) for these two.

`table` prints the markdown table the docs page holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BATCHES = (1, 3)
CONVERTED_LIMIT = 1e-3  # heatmap units against onnxruntime, for converters without a verdict


def _cnp(args: list[str], env: dict[str, str] | None = None, timeout: int = 1800):
    command = [PYTHON, "-m", "cnp_convert", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def _graphs(work: Path, variants: list[str]) -> list[dict]:
    """(variant, precision, opset, checkpoint, graph) for every default export, made once."""
    from cnp_convert.checkpoints.fabricate import fabricate_release
    from cnp_convert.checkpoints.released import released_release

    made = []
    for variant in variants:
        ckpt = work / f"ConvNeXtPose_{variant}.tar"
        if not ckpt.exists():
            released_release(work) if variant == "XS" else fabricate_release(variant, work)
        precisions = ("fp32", "fp16", "int8") if variant == "XS" else ("fp32",)
        forms = [(p, None) for p in precisions] + [("fp32", 11)]
        for precision, opset in forms:
            name = f"{variant}_{precision}" + (f"_opset{opset}" if opset else "")
            graph = work / f"{name}.onnx"
            if not graph.exists():
                args = ["onnx", "--checkpoint", str(ckpt), "-o", str(graph)]
                args += ["--precision", precision] + (["--opset", str(opset)] if opset else [])
                done = _cnp(args)
                if done.returncode != 0:
                    raise SystemExit(f"export {name} failed: {done.stderr.strip()[-500:]}")
            made.append(
                {
                    "variant": variant,
                    "precision": precision,
                    "opset": opset or 18,
                    "checkpoint": str(ckpt),
                    "graph": str(graph),
                }
            )
    return made


def _verdict(graph: dict, runtime: str, extra: list[str], env=None) -> dict:
    args = ["verify", graph["graph"], "--checkpoint", graph["checkpoint"], "--runtime", runtime]
    args += ["--batch", ",".join(map(str, BATCHES)), "--seed", "7", "--json", *extra]
    started = time.perf_counter()
    done = _cnp(args, env=env)
    row = {"code": done.returncode, "seconds": round(time.perf_counter() - started, 1)}
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        row["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return row
    report = report if isinstance(report, dict) else {}
    row["providers"] = report.get("providers")
    row["precision"] = report.get("precision")
    worst = []
    for result in report.get("results") or []:
        for entry in result.get("outputs") or []:
            if entry.get("limit"):
                worst.append((entry["error"] / entry["limit"], result.get("batch")))
    if worst:
        row["worst_of_limit"] = round(max(worst)[0], 3)
        row["failed_batches"] = sorted({b for r, b in worst if r > 1})
    pose = report.get("pose_change") or []
    if pose:
        # the real photo crops' worst (the synthetic frames carry their own, wider budget)
        photos = [p for p in pose if "photo" in str(p.get("source"))] or pose
        row["worst_mm"] = round(max(p.get("worst_mm", 0) for p in photos), 2)
        row["failed_batches"] = sorted({p.get("batch") for p in pose if not p.get("passed")})
    if done.returncode == 2:
        row["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return row


_CONVERTED = textwrap.dedent(
    """
    import json, sys, types
    import numpy as np
    import onnxruntime as ort
    sys.path.insert(0, {root!r})
    graph, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(7)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    result = {{"batches": {{}}}}
    def compare(run):
        for batch in {batches!r}:
            image = rng.normal(size=(batch, 3, 256, 256)).astype(np.float32)
            want = session.run(["coords"], {{"image": image}})[0]
            got = run(image)
            result["batches"][str(batch)] = float(np.abs(got - want).max())
    try:
        if kind == "onnx2torch":
            try:
                import torchvision  # noqa: F401
            except Exception:  # the NMS converter's import only; no graph here uses NMS
                stand_in = types.ModuleType("torchvision")
                stand_in.__path__ = []
                ops = types.ModuleType("torchvision.ops")
                ops.__getattr__ = lambda name: None  # nms, roi_align, ...: never called here
                stand_in.ops = ops
                sys.modules.update({{"torchvision": stand_in, "torchvision.ops": ops}})
                result["torchvision"] = "stand-in"
            import onnx2torch, torch
            torch.set_num_threads(1)
            from importlib.metadata import version
            result["version"] = "onnx2torch " + version("onnx2torch")
            module = onnx2torch.convert(graph).eval()
            def run(image):
                with torch.no_grad():
                    return module(torch.from_numpy(image)).numpy()
            compare(run)
        else:
            import pathlib, tempfile
            import onnx2tf
            from ai_edge_litert.interpreter import Interpreter
            import ai_edge_litert
            result["version"] = "onnx2tf %s, LiteRT %s" % (
                onnx2tf.__version__, getattr(ai_edge_litert, "__version__", "?"))
            folder = tempfile.mkdtemp()
            # keep the NCHW input as exported: the comparison feeds the same array
            onnx2tf.convert(input_onnx_file_path=graph, output_folder_path=folder,
                            keep_shape_absolutely_input_names=["image"],
                            non_verbose=True)
            width = "float16" if kind == "tflite-float16" else "float32"
            tflite = sorted(pathlib.Path(folder).glob(f"*_{{width}}.tflite"))[0]
            def run(image):
                interpreter = Interpreter(model_path=str(tflite))
                index = interpreter.get_input_details()[0]["index"]
                interpreter.resize_tensor_input(index, image.shape)
                interpreter.allocate_tensors()
                interpreter.set_tensor(index, image)
                interpreter.invoke()
                outputs = interpreter.get_output_details()
                coords = [o for o in outputs if tuple(o["shape"][-2:]) == (18, 3)]
                return interpreter.get_tensor(coords[0]["index"])
            compare(run)
    except Exception as exc:
        result["error"] = (type(exc).__name__ + ": " + str(exc).strip().splitlines()[0]
                           if str(exc).strip() else type(exc).__name__)[:300]
    with open(out, "w") as handle:
        json.dump(result, handle)
    """
)


def _converted(graph: dict, kind: str, python: str, env: dict[str, str], work: Path) -> dict:
    out = work / f"converted_{kind}_{Path(graph['graph']).stem}.json"
    script = _CONVERTED.format(root=str(ROOT), batches=BATCHES)
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-c", script, graph["graph"], kind, str(out)],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    if not out.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"error": tail, "seconds": round(time.perf_counter() - started, 1)}
    row = json.loads(out.read_text())
    row["seconds"] = round(time.perf_counter() - started, 1)
    if "error" not in row and kind != "tflite-float16":  # float16: no fp32 limit applies
        row["passed"] = all(v <= CONVERTED_LIMIT for v in row["batches"].values())
    return row


def _env(prefix: str | None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if prefix:
        env["PYTHONPATH"] = prefix + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    return env


def run(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    done_keys = {(r["graph"], r["target"]) for r in results}
    graphs = _graphs(work, args.variants.split(","))
    targets: list[tuple[str, object]] = [
        ("onnxruntime", ("onnxruntime", [], None)),  # the installed one: `cnp-convert doctor`
        ("openvino f32", ("openvino", ["--ov-precision", "f32"], None)),
        ("openvino default", ("openvino", [], None)),
        ("opencv installed", ("opencv", [], None)),
    ]
    targets += [(f"opencv {Path(d).name}", ("opencv", [], d)) for d in args.opencv_dirs]
    if args.onnx2torch_dir:
        targets.append(("onnx2torch", ("converted", "onnx2torch", args.onnx2torch_dir)))
    if args.tflite:
        targets.append(("tflite verdict", ("tflite", [], None)))
    if args.tflite_python:
        targets.append(("tflite", ("converted", "tflite", args.tflite_python)))
        targets.append(("tflite float16", ("converted", "tflite-float16", args.tflite_python)))
    for graph in graphs:
        for label, spec in targets:
            if (graph["graph"], label) in done_keys:
                continue
            kind = spec[0]
            converted = kind == "converted"
            if converted and graph["precision"] != "fp32":
                continue  # the converters' own fp16/int8 recipes are not measured here
            if kind == "tflite" and graph["precision"] != "fp32":
                continue  # the tool's tflite target writes float32 files only
            if not converted and graph["opset"] != 18 and kind != "tflite":
                continue  # the tool's runtimes are judged on the default exports
            if converted:
                _, which, where = spec
                if which == "onnx2torch":
                    row = _converted(graph, which, PYTHON, _env(where), work)
                else:
                    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                    row = _converted(graph, which, where, env, work)
            else:
                runtime, extra, prefix = spec
                row = _verdict(graph, runtime, extra, _env(prefix))
            row.update(graph, target=label)
            results.append(row)
            results_path.write_text(json.dumps(results, indent=1))
            print(json.dumps(row), flush=True)


def _cell(row: dict, notes: list[str]) -> str:
    def note(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    if row.get("error"):
        return f"cannot {note(row['error'])}"
    if "batches" in row:  # a converter's output against onnxruntime's
        worst = max(row["batches"].values())
        if "passed" not in row:
            return f"runs, Δ {worst:.1e}"
        return f"{'pass' if row['passed'] else 'WRONG'}, Δ {worst:.1e}"
    if row["code"] == 0:
        if "worst_of_limit" in row:
            return f"pass, {row['worst_of_limit']:.2f} of limit"
        return f"pass, worst {row['worst_mm']:.1f} mm"
    failed = ",".join(map(str, row.get("failed_batches") or [])) or "?"
    detail = f", worst {row['worst_mm']:.1f} mm" if "worst_mm" in row else ""
    if "worst_of_limit" in row:
        detail = f", {row['worst_of_limit']:.0f}x the limit"
    return f"REFUSED at batch {failed}{detail}"


def table(args: argparse.Namespace) -> None:
    results = json.loads(Path(args.results).read_text())
    graphs = list(dict.fromkeys(_graph_name(r) for r in results))
    targets: dict[str, dict[str, dict]] = {}
    for r in results:
        targets.setdefault(r["target"], {})[_graph_name(r)] = r
    notes: list[str] = []
    print("| target | reported as | " + " | ".join(graphs) + " |")
    print("|---" * (len(graphs) + 2) + "|")
    for target, rows in targets.items():
        reported = next(
            ((r.get("providers") or [r.get("version")])[0] for r in rows.values()
             if r.get("providers") or r.get("version")),
            "–",
        )  # fmt: skip
        cells = [_cell(rows[g], notes) if g in rows else "–" for g in graphs]
        print(f"| {target} | {reported} | " + " | ".join(cells) + " |")
    print()
    for number, text in enumerate(notes, 1):
        print(f"[{number}] {text}  ")


def _graph_name(row: dict) -> str:
    opset = f" opset {row['opset']}" if row["opset"] != 18 else ""
    return f"{row['variant']} {row['precision']}{opset}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("--work", required=True)
    runner.add_argument("--variants", default="XS,S,M,L")
    runner.add_argument("--opencv-dirs", nargs="*", default=[])
    runner.add_argument("--onnx2torch-dir")
    runner.add_argument("--tflite-python")
    runner.add_argument("--tflite", action="store_true")
    printer = sub.add_parser("table")
    printer.add_argument("results")
    args = parser.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
