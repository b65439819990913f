"""CanonicalCheckpoint -> a verified ONNX file.

Steps: strict-load the model, apply the exact head rewrites, fold the BatchNorms that sit next
to a conv (exact), export (opset 18; torch's TorchScript exporter while torch ships it, else the
dynamo exporter; either on request), simplify with onnxsim when asked (on failure keep the
exported graph and say why), quantize for int8, write our
metadata, run the ONNX checker and strict shape inference, check the graph fits the variant, then
run onnxruntime on CPU against the unfolded fp32 PyTorch model, with the tolerance of the graph's
precision. The file (and the .ort file, when asked for) appears at its final path only after all
of that passed; a failed check leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from converter import __version__
from converter.checkpoints.canonical import CanonicalCheckpoint, build_loaded_model
from converter.checkpoints.fabricate import normalize_images, seeded_images
from converter.core.atomic import atomic_output, check_output_path
from converter.core.errors import CheckFailedError, OnnxModelError, UsageError, first_line
from converter.core.model import ConvNeXtPose
from converter.core.progress import ProgressCallback, progress_callback
from converter.core.variants import VariantSpec
from converter.export.fold import fold_batchnorms
from converter.export.precision import (
    CalibrationSet,
    HalfPrecisionPose,
    QuantizationFacts,
    calibration_set,
    quantize_int8,
)
from converter.export.rewrite import NO_REWRITES, REWRITES, RewriteReport, rewrite_head
from converter.graphs.facts import (
    GraphFacts,
    format_shape,
    graph_facts,
    variant_disagreements,
)
from converter.graphs.metadata import OnnxMetadata, write_onnx_metadata
from converter.h36m.synthetic import synthetic_crops
from converter.runtimes.sessions import OnnxSession, open_onnx_session, save_ort_format
from converter.verdicts.judge import (
    POSE_FRAMES,
    BackgroundReference,
    ParityFailedError,
    pose_crop_sets,
    resolve_seed,
    run_fp32_verdict,
    run_pose_verdicts,
)
from converter.verdicts.parity import ParityReport, PoseChange
from converter.verdicts.tolerances import check_precision, fp32_limits

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
MIN_OPSET = 11  # Resize with align_corners needs opset 11
INPUT_NAME = "image"
PARITY_SEED = 1234  # the example input the exporter traces with (not a verdict input)
_DYNAMO_EXAMPLE_BATCH = 2  # torch.export specializes a dimension whose example size is 1


@dataclass(frozen=True)
class ExportReport:
    path: str
    variant: str
    weights: str
    weights_sha256: str
    source_sha256: str
    opset: int
    exporter: str
    batch: str
    outputs: tuple[str, ...]
    simplified: bool
    simplify_error: str | None
    size_bytes: int
    seconds: float
    export_seconds: float
    graph: GraphFacts
    parity: tuple[ParityReport, ...]
    metadata: OnnxMetadata
    precision: str = "fp32"
    folded_batchnorms: int = 0
    ort_path: str | None = None
    quantization: QuantizationFacts | None = None
    ort_parity: tuple[ParityReport, ...] = ()  # the .ort file's own check, when written
    pose: tuple[PoseChange, ...] = ()  # fp16 / int8: the pose change verdict
    ort_pose: tuple[PoseChange, ...] = ()
    seed: int = 0
    rewrites: RewriteReport = NO_REWRITES

    @property
    def checks(self) -> tuple[ParityReport | PoseChange, ...]:
        return (*self.parity, *self.pose, *self.ort_parity, *self.ort_pose)

    @property
    def passed(self) -> bool:
        return bool(self.parity or self.pose) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, object]:
        # A refused graph was never published: no path or size to point a reader at.
        written = self.passed
        return {
            "path": self.path if written else None,
            "written": written,
            "variant": self.variant,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "source_sha256": self.source_sha256,
            "opset": self.opset,
            "exporter": self.exporter,
            "batch": self.batch,
            "outputs": list(self.outputs),
            "simplified": self.simplified,
            "simplify_error": self.simplify_error,
            "size_bytes": self.size_bytes if written else None,
            "seconds": round(self.seconds, 3),
            "export_seconds": round(self.export_seconds, 3),
            "precision": self.precision,
            "folded_batchnorms": self.folded_batchnorms,
            "rewrites": self.rewrites.to_dict(),
            "ort_path": self.ort_path,
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "graph": self.graph.to_dict(),
            "parity_backend": "onnxruntime CPUExecutionProvider vs PyTorch CPU",
            "seed": self.seed,
            "parity": [p.to_dict() for p in self.parity],
            "ort_parity": [p.to_dict() for p in self.ort_parity],
            "pose_change": [p.to_dict() for p in self.pose],
            "ort_pose_change": [p.to_dict() for p in self.ort_pose],
            "passed": self.passed,
        }

    def lines(self) -> list[str]:
        g = self.graph
        ops = ", ".join(f"{op} {n}" for op, n in sorted(g.op_types.items(), key=lambda x: -x[1]))
        modes = ", ".join(sorted(set(g.resize_modes))) or "none"
        heading = (
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB) in {self.seconds:.1f} s"
            if self.passed
            else f"refused {self.path}: the verdict failed, nothing written ({self.seconds:.1f} s)"
        )
        out = [
            heading,
            f"  ConvNeXtPose-{self.variant}, weights {self.weights} "
            f"(sha256 {self.weights_sha256[:12]}), opset {self.opset}, exporter {self.exporter}, "
            f"batch {self.batch}, outputs {', '.join(self.outputs)}, "
            f"simplified {'yes' if self.simplified else 'no'}, precision {self.precision}, "
            f"{self.folded_batchnorms} BatchNorms folded, "
            f"rewrites {', '.join(self.rewrites.applied) or 'none'}",
            f"  graph: input {g.input_names[0]} {format_shape(g.input_shape)}; "
            + "; ".join(f"{k} {format_shape(v)}" for k, v in g.output_shapes.items()),
            f"  {g.node_count} nodes: {ops}",
            f"  Resize {g.resize_count} ({modes}), Range {'present' if g.has_range else 'none'}, "
            f"final conv {g.final_conv_channels} channels at {format_shape(g.final_conv_hw)}"
            + (
                f", upsampled to {format_shape(g.heatmap_hw)}"
                if g.heatmap_hw is not None and g.heatmap_hw != g.final_conv_hw
                else ""
            ),
        ]
        if self.quantization is not None:
            q = self.quantization
            out.append(
                f"  int8: {q.quant_format}, {q.activation_type} activations, {q.weight_type} "
                f"weights{' per channel' if q.per_channel else ''}, {q.calibrate_method} "
                f"calibration on {q.calibration}; {len(q.excluded_nodes)} nodes kept fp32 (the "
                f"high-resolution layers and the soft-argmax)"
            )
        if self.ort_path:
            out.append(f"  onnxruntime format: {self.ort_path}")
            if self.precision == "fp16":
                # Measured: the XS .ort is 14.2 MB, like fp32, against 7.1 MB for the .onnx.
                out.append(
                    "  note: this onnxruntime's CPU provider has no fp16 kernels, so the .ort "
                    "holds the graph converted to fp32; give the .onnx to an fp16-capable runtime"
                )
        out.append(f"  verdict inputs: seed {self.seed}")
        for label, reports in (("onnxruntime CPU", self.parity), (".ort file", self.ort_parity)):
            for report in reports:
                for entry in report.outputs:
                    out.append(f"  parity ({label}) batch {report.batch}: {entry.line()}")
        for label, changes in (("onnxruntime CPU", self.pose), (".ort file", self.ort_pose)):
            for change in changes:
                out.append(f"  verdict ({label}) batch {change.batch}: {change.line()}")
        return out


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporters' chatter (torchvision-op notices, deprecation notes) during export."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _CoordsAndHeatmaps(nn.Module):
    def __init__(self, model: ConvNeXtPose) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_heatmaps(image)


def _export_module(
    model: ConvNeXtPose, precision: str, heatmaps: bool, fold: bool
) -> tuple[nn.Module, int]:
    """What goes to the exporter, and how many BatchNorms were folded into convs."""
    if precision == "fp16":  # folding is part of the fp16 recipe (see converter.export.precision)
        module = HalfPrecisionPose(model, heatmaps).eval()
        return module, module.fold_report.count
    folded = 0
    if fold:
        model, report = fold_batchnorms(model)
        folded = report.count
    return (_CoordsAndHeatmaps(model) if heatmaps else model), folded


DYNAMO_MIN_OPSET = 18  # torch.onnx's dynamo exporter writes opset 18 and newer only
# torch.onnx's TorchScript exporter writes opsets up to 20 (torch.onnx._constants says so too).
TORCHSCRIPT_MAX_OPSET = 20


def torchscript_available() -> bool:
    """Whether this torch still ships the TorchScript-based exporter (deprecated since 2.9)."""
    return importlib.util.find_spec("torch.onnx._internal.torchscript_exporter") is not None


def resolve_exporter(exporter: str | None, opset: int) -> str:
    """The exporter that can honour opset (None: pick one).

    The default is the TorchScript exporter while torch ships it: for this network it writes the
    same operators as the dynamo exporter (both pass the same verdict) in a tenth of the time
    (XS: 0.3 s against 4-6 s of torch.export tracing, measured in benchmarks/exporters.py) and
    can write the opsets 11-17 older runtimes need. Checked before any weights are loaded: a
    wrong pair fails in milliseconds, not after an export.
    """
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UsageError(
            f"--opset {opset}: this tool exports opsets {MIN_OPSET} to {newest} (Resize with "
            f"align_corners needs {MIN_OPSET}; onnx {onnx.__version__} knows up to {newest})"
        )
    has_torchscript = torchscript_available()
    if exporter is None:
        if has_torchscript and opset <= TORCHSCRIPT_MAX_OPSET:
            return "torchscript"
        if opset >= DYNAMO_MIN_OPSET:
            return "dynamo"
        raise UsageError(
            f"--opset {opset}: only the TorchScript exporter writes opsets below "
            f"{DYNAMO_MIN_OPSET}, and torch {torch.__version__} no longer ships it"
        )
    if exporter not in EXPORTERS:
        raise UsageError(f"--exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:
        raise UsageError(
            f"--opset {opset}: the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or newer; "
            "use --exporter torchscript for older opsets"
        )
    if exporter == "torchscript":
        if not has_torchscript:
            raise UsageError(
                f"--exporter torchscript: torch {torch.__version__} no longer ships it; "
                "use --exporter dynamo"
            )
        if opset > TORCHSCRIPT_MAX_OPSET:
            raise UsageError(
                f"--opset {opset}: the torchscript exporter writes opset "
                f"{TORCHSCRIPT_MAX_OPSET} or older; use --exporter dynamo for newer opsets"
            )
    return exporter


def parse_batch(batch: str | int) -> str | int:
    """ "dynamic" or a positive int (also as text)."""
    if isinstance(batch, int) and not isinstance(batch, bool):
        value = batch
    else:
        text = str(batch).strip().lower()
        if text == "dynamic":
            return "dynamic"
        try:
            value = int(text)
        except ValueError:
            raise UsageError(
                f"--batch must be 'dynamic' or a positive integer, not {batch!r}"
            ) from None
    if value < 1:
        raise UsageError(f"--batch must be 'dynamic' or a positive integer, not {batch!r}")
    return value


def _export_proto(
    module: nn.Module,
    spec: VariantSpec,
    outputs: tuple[str, ...],
    batch: str | int,
    opset: int,
    exporter: str,
) -> onnx.ModelProto:
    if batch != "dynamic":
        example_batch = int(batch)
    else:  # TorchScript keeps the axis dynamic whatever the example; torch.export needs 2+
        example_batch = _DYNAMO_EXAMPLE_BATCH if exporter == "dynamo" else 1
    example = torch.from_numpy(
        normalize_images(seeded_images(example_batch, PARITY_SEED, spec.input_hw), spec)
    )
    with _quiet_exporter(), torch.no_grad():
        if exporter == "dynamo":
            dynamic = None
            if batch == "dynamic":
                dynamic = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}}
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(outputs),
                dynamic_shapes=dynamic,
                verbose=False,
            )
            return program.model_proto
        buffer = io.BytesIO()
        axes = {n: {0: "batch"} for n in (INPUT_NAME, *outputs)} if batch == "dynamic" else None
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(outputs),
            dynamic_axes=axes,
            do_constant_folding=True,
        )
        return onnx.load_from_string(buffer.getvalue())


def _declare_output_shapes(
    proto: onnx.ModelProto, spec: VariantSpec, outputs: tuple[str, ...], batch: str | int
) -> None:
    """Write the contract's output shapes on the graph outputs, in place.

    What consumers read (onnxruntime's get_outputs(), Netron, converters) are these declared
    shapes. The TorchScript exporter leaves the joint axis of coords as a symbol after the moment
    soft-argmax's Concat; the strict shape inference of _checked_facts then refuses any graph
    whose computed shapes disagree with what is declared here.
    """
    tails = {"coords": (spec.joint_num, 3), "heatmaps": (spec.final_channels, *spec.heatmap_hw)}
    for value in proto.graph.output:
        if value.name not in outputs:
            continue
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        first = shape.dim.add()
        if batch == "dynamic":
            first.dim_param = "batch"
        else:
            first.dim_value = int(batch)
        for size in tails[value.name]:
            shape.dim.add().dim_value = size


def _simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """onnxsim's result, or the input graph and the reason it was kept."""
    try:
        import onnxsim
    except ImportError:  # an optional dependency: it has no wheels for every platform
        return model, "onnxsim is not installed (pip install onnxsim)"
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises anything from protobuf to its own C++ errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return model, f"onnxsim failed ({type(exc).__name__}: {first[:200]})"
    if not ok:
        return model, "onnxsim's own output check failed"
    return simplified, None


def contract_problems(
    facts: GraphFacts,
    spec: VariantSpec,
    outputs: tuple[str, ...],
    batch: str | int,
    opset: int,
    precision: str = "fp32",
) -> list[str]:
    """What breaks the graph contract (input image N x 3 x 256 x 256, coords N x 18 x 3 ...)."""
    problems = variant_disagreements(facts, spec)
    if facts.precision != precision:
        problems.append(f"the graph computes in {facts.precision}, {precision} was asked for")
    if facts.opset != opset:
        problems.append(f"the graph's opset is {facts.opset}, {opset} was asked for")
    n: object = "batch" if batch == "dynamic" else batch
    h, w = spec.input_hw
    if facts.input_names != (INPUT_NAME,):
        problems.append(f"inputs are {list(facts.input_names)}, expected ['{INPUT_NAME}']")
    if facts.input_elem_type != onnx.TensorProto.FLOAT:
        problems.append("input is not float32")
    expected_in = (3, h, w)
    if facts.input_shape is None or tuple(facts.input_shape[1:]) != expected_in:
        problems.append(f"input shape {format_shape(facts.input_shape)}, expected Nx3x{h}x{w}")
    expected_out = {"coords": (spec.joint_num, 3)}
    if "heatmaps" in outputs:
        expected_out["heatmaps"] = (spec.final_channels, *spec.heatmap_hw)
    if tuple(facts.output_shapes) != outputs:
        problems.append(f"outputs are {list(facts.output_shapes)}, expected {list(outputs)}")
    for name, tail in expected_out.items():
        shape = facts.output_shapes.get(name)
        if shape is None or tuple(shape[1:]) != tail:
            problems.append(f"output {name} is {format_shape(shape)}, expected N x {tail}")
    for shape in (facts.input_shape, *facts.output_shapes.values()):
        if shape and (isinstance(shape[0], int) != (batch != "dynamic")):
            problems.append(f"batch axis is {shape[0]!r}, expected {n!r}")
            break
    if facts.has_range:
        problems.append("the graph holds a Range op (mobile runtimes reject it)")
    if not facts.resize_align_corners:
        problems.append(f"Resize modes {list(facts.resize_modes)}, expected linear/align_corners")
    return problems


def _checked_facts(
    proto: onnx.ModelProto,
    out: Path,
    spec: VariantSpec,
    outputs: tuple[str, ...],
    batch: str | int,
    opset: int,
    precision: str,
) -> GraphFacts:
    """ONNX checker (full), strict shape inference, then the graph contract; facts if all pass."""
    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except Exception as exc:  # ValidationError / InferenceError
        first = str(exc).strip().splitlines()[0]
        message = f"{out}: the exported graph fails the ONNX checker ({first})"
        raise CheckFailedError(message) from None
    facts = graph_facts(inferred)
    problems = contract_problems(facts, spec, outputs, batch, opset, precision)
    if problems:
        raise CheckFailedError(
            f"{out}: the exported graph breaks the contract for {spec.name}: {'; '.join(problems)}"
        )
    return facts


def export_onnx(
    ckpt: CanonicalCheckpoint,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    batch: str | int = "dynamic",
    heatmaps: bool = False,
    simplify: bool = False,
    exporter: str | None = None,
    force: bool = False,
    atol: float | Mapping[str, float] | None = None,
    protect: tuple[Path, ...] = (),
    precision: str = "fp32",
    fold: bool = True,
    calibration: CalibrationSet | str | Path | None = None,
    ort_format: bool = False,
    seed: int | None = None,
    rewrites: tuple[str, ...] = REWRITES,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Export, check and verify; the file exists at out only if every check passed.

    protect: paths never to overwrite (the checkpoint's own file is always protected).
    atol (fp32 only): replaces the floor rule; a float for coords, a mapping for any output.
    fp16/int8 graphs are judged by their pose-change budget (converter.verdicts.tolerances).
    seed: the verdict inputs' seed (None: a fresh one, reported).
    precision: fp32, fp16 or int8 (converter.export.precision).
    fold: fold BatchNorms into the convs next to them (exact; fp16 always folds).
    calibration: int8 only: a CalibrationSet, or a directory for calibration_set (None: the
    shipped real photos, augmented).
    ort_format: also write the onnxruntime format file next to out (same name, .ort).
    rewrites: the exact head rewrites to apply where they fit the variant (names from
    converter.export.rewrite.REWRITES; () keeps the literal graph). The verdict's reference is
    the model as loaded either way.
    progress: told each stage as it starts (converter.core.progress): the export, onnxsim,
    int8 calibration (image by image) and the verdict.
    """
    started = time.perf_counter()
    stage = progress_callback(progress)
    out = Path(out)
    precision = check_precision(precision)
    exporter = resolve_exporter(exporter, opset)
    if calibration is not None and precision != "int8":
        raise UsageError("calibration images are for --precision int8 only")
    batch = parse_batch(batch)
    raw = getattr(ckpt, "raw", None)
    inputs = (*protect, *([Path(raw.path)] if raw is not None else []))
    check_output_path(out, inputs, force)
    ort_out = out.with_suffix(".ort") if ort_format else None
    if ort_out is not None:
        if ort_out == out:
            raise UsageError(f"{out}: name the ONNX output *.onnx when asking for --ort-format")
        check_output_path(ort_out, inputs, force)
    spec = ckpt.spec
    outputs = ("coords", "heatmaps") if heatmaps else ("coords",)
    if atol is not None and precision != "fp32":
        raise UsageError(f"--atol applies to fp32; {precision} is judged by its pose budget")
    limits = fp32_limits(outputs, atol)
    seed = resolve_seed(seed)
    if precision == "int8" and not isinstance(calibration, CalibrationSet):
        calibration = calibration_set(spec, calibration)  # bad data fails before the export

    stage(f"export ({exporter} exporter)", 0, None)
    model = build_loaded_model(ckpt)
    rewritten, applied = rewrite_head(model, rewrites)
    module, folded = _export_module(rewritten, precision, heatmaps, fold)
    # Dynamic graphs are checked at two batch sizes: a graph that only works at the
    # example's size is the classic dynamic-batch failure.
    batches = (1, 2) if batch == "dynamic" else (int(batch),)
    reference: BackgroundReference | None = None
    if precision == "fp32" and exporter == "torchscript":
        # The float64 reference runs while the graph is traced. TorchScript's tracing state is
        # per thread; torch.export's tracer patches nn.Module for every thread, so the dynamo
        # exporter gets its reference after the export instead.
        reference = BackgroundReference(model, spec, max(batches), seed, heatmaps)
    try:
        proto = _export_proto(module, spec, outputs, batch, opset, exporter)
    except Exception as exc:  # exporter internals raise many types; the message is what counts
        first = first_line(exc)
        raise OnnxModelError(f"{out}: the {exporter} exporter failed ({first[:300]})") from None
    _declare_output_shapes(proto, spec, outputs, batch)
    if precision == "fp32" and reference is None:
        reference = BackgroundReference(model, spec, max(batches), seed, heatmaps)
    export_seconds = time.perf_counter() - started

    simplify_error = None
    if simplify:
        stage("simplify (onnxsim)", 0, None)
        proto, simplify_error = _simplify(proto)
    quantization = None
    if isinstance(calibration, CalibrationSet):
        proto, quantization = quantize_int8(proto, calibration, spec, progress=progress)
    metadata = OnnxMetadata.for_spec(
        spec,
        outputs=outputs,
        batch=str(batch),
        source_sha256=ckpt.metadata.source_sha256 or "",
        weights_sha256=ckpt.metadata.weights_sha256,
        weights=ckpt.metadata.weights,
        converter_version=__version__,
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
        opset=opset,
        exporter=exporter,
        simplified=simplify and simplify_error is None,
        simplify_error=simplify_error,
        precision=precision,
        checkpoint=asdict(ckpt.metadata),
    )
    write_onnx_metadata(proto, metadata)
    if quantization is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "quantization", json.dumps(quantization.to_dict())
    entry = proto.metadata_props.add()
    entry.key, entry.value = "rewrites", json.dumps(list(applied.applied))
    proto.doc_string = f"ConvNeXtPose-{spec.name} exported by cnp-convert {__version__}"
    facts = _checked_facts(proto, out, spec, outputs, batch, opset, precision)

    stage("verdict (onnxruntime CPU against PyTorch)", 0, None)
    if reference is None:
        crops = synthetic_crops(spec, POSE_FRAMES, seed)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(out, overwrite=force))
        onnx.save(proto, str(tmp))
        session = open_onnx_session(tmp, "cpu")

        def check(
            candidate: OnnxSession,
        ) -> tuple[tuple[ParityReport, ...], tuple[PoseChange, ...]]:
            cpu = torch.device("cpu")
            if reference is not None:
                return run_fp32_verdict(
                    model, candidate, reference.images(), batches, limits,
                    torch_device=cpu, spec=spec, float64_outputs=reference.float64_outputs,
                ), ()  # fmt: skip
            return (), run_pose_verdicts(
                model,
                candidate,
                pose_crop_sets(spec, crops),
                batches,
                precision=precision,
                torch_device=cpu,
                spec=spec,
            )

        parity, pose = check(session)
        ort_parity: tuple[ParityReport, ...] = ()
        ort_pose: tuple[PoseChange, ...] = ()
        if ort_out is not None and all(c.passed for c in (*parity, *pose)):
            stage("verdict of the .ort file", 0, None)
            ort_tmp = stack.enter_context(atomic_output(ort_out, overwrite=force))
            save_ort_format(tmp, ort_tmp)
            # The .ort file is held to the same check: it is what a phone will run.
            ort_parity, ort_pose = check(open_onnx_session(ort_tmp, "cpu", ort_format=True))
        size = tmp.stat().st_size
        report = ExportReport(
            path=str(out),
            variant=spec.name,
            weights=ckpt.metadata.weights,
            weights_sha256=ckpt.metadata.weights_sha256,
            source_sha256=ckpt.metadata.source_sha256 or "",
            opset=opset,
            exporter=exporter,
            batch=str(batch),
            outputs=outputs,
            simplified=metadata.simplified,
            simplify_error=simplify_error,
            size_bytes=size,
            seconds=time.perf_counter() - started,
            export_seconds=export_seconds,
            graph=facts,
            parity=parity,
            metadata=metadata,
            precision=precision,
            folded_batchnorms=folded,
            ort_path=str(ort_out) if (ort_parity or ort_pose) else None,
            quantization=quantization,
            ort_parity=ort_parity,
            pose=pose,
            ort_pose=ort_pose,
            seed=seed,
            rewrites=applied,
        )
        if not report.passed:
            raise ParityFailedError(
                f"{out}: the verdict failed on onnxruntime CPU ({_first_failure(report)}); "
                "no file written",
                report,
            )
    return report


def _first_failure(report: ExportReport) -> str:
    for check in report.checks:
        if isinstance(check, PoseChange):
            if not check.passed:
                return f"batch {check.batch}: {check.line()}"
            continue
        for entry in check.outputs:
            if not entry.passed:
                return f"batch {check.batch}: {entry.line()}"
    return "no output compared"
