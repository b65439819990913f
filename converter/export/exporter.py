"""CanonicalCheckpoint -> a verified ONNX file.

Steps: strict-load the model, apply the exact head rewrites, fold the BatchNorms that sit next
to a conv (exact), export (opset 18; torch's TorchScript exporter while torch ships it, else the
dynamo exporter; either on request), simplify with onnxsim when asked (on failure keep the
exported graph and say why), quantize for int8, write our
metadata, run the ONNX checker and strict shape inference, check the graph fits the variant, then
run onnxruntime on CPU against the unfolded fp32 PyTorch model, with the tolerance of the graph's
precision. For the tflite target the graph is then converted by onnx2tf and the .tflite held to
the same verdict on LiteRT (converter.runtimes.tflite_session). The file (and the .ort and
.tflite files, when asked for) appears at its final path only after all of that passed; a failed
check leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from .. import __version__
from ..checkpoints.canonical import CanonicalCheckpoint, build_loaded_model
from ..core.atomic import check_output_path, output_set
from ..core.choices import POSE_FRAMES
from ..core.errors import CheckFailedError, OnnxModelError, OptionError, first_line
from ..core.model import ConvNeXtPose
from ..core.progress import ProgressCallback, progress_callback
from ..core.variants import VariantSpec
from ..graphs.facts import (
    GraphFacts,
    format_shape,
    graph_facts,
    variant_disagreements,
)
from ..graphs.metadata import OnnxMetadata, write_onnx_metadata
from ..h36m.preprocess import normalize_images, seeded_images
from ..h36m.synthetic import synthetic_crops
from ..runtimes.sessions import Session, open_onnx_session, save_ort_format
from ..runtimes.tflite_session import TfliteSession
from ..verdicts.judge import (
    BackgroundReference,
    ParityFailedError,
    pose_crop_sets,
    pose_reference,
    resolve_seed,
    run_fp32_verdict,
    run_pose_verdicts,
)
from ..verdicts.parity import ParityReport, PoseChange
from ..verdicts.tolerances import fp32_limits
from .fold import fold_batchnorms
from .options import ExportOptions
from .precision import (
    CalibrationSet,
    HalfPrecisionPose,
    QuantizationFacts,
    calibration_set,
    quantize_int8,
)
from .rewrite import NO_REWRITES, RewriteReport, rewrite_head

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
    tflite_path: str | None = None  # the tflite target's file, when its verdict ran
    tflite_runtime: str | None = None  # what converted and ran it, versions read back
    tflite_parity: tuple[ParityReport, ...] = ()

    @property
    def checks(self) -> tuple[ParityReport | PoseChange, ...]:
        return (*self.parity, *self.pose, *self.ort_parity, *self.ort_pose, *self.tflite_parity)

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
            "tflite_path": self.tflite_path if written else None,
            "tflite_runtime": self.tflite_runtime,
            "tflite_parity": [p.to_dict() for p in self.tflite_parity],
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
                # The .ort is the size of an fp32 file (docs/precision_and_speed.md, --ort-format).
                out.append(
                    "  note: this onnxruntime's CPU provider has no fp16 kernels, so the .ort "
                    "holds the graph converted to fp32; give the .onnx to an fp16-capable runtime"
                )
        if self.tflite_runtime is not None:
            shown = self.tflite_path if self.passed else "not written"
            out.append(f"  TFLite: {shown} ({self.tflite_runtime})")
        out.append(f"  verdict inputs: seed {self.seed}")
        for label, reports in (
            ("onnxruntime CPU", self.parity),
            (".ort file", self.ort_parity),
            (".tflite on LiteRT", self.tflite_parity),
        ):
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


def trace_to_onnx(
    module: nn.Module,
    spec: VariantSpec,
    outputs: tuple[str, ...],
    batch: str | int,
    opset: int,
    exporter: str,
) -> onnx.ModelProto:
    """The exporter's graph of module (input "image", the given outputs), nothing checked."""
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
    proto: onnx.ModelProto, out: Path, spec: VariantSpec, options: ExportOptions
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
    problems = contract_problems(
        facts, spec, options.outputs, options.batch, options.opset, options.precision
    )
    if problems:
        raise CheckFailedError(
            f"{out}: the exported graph breaks the contract for {spec.name}: {'; '.join(problems)}"
        )
    return facts


@dataclass(frozen=True)
class BuiltGraph:
    """A graph as export_onnx builds it, before its checks and its verdict."""

    proto: onnx.ModelProto
    metadata: OnnxMetadata
    folded_batchnorms: int
    rewrites: RewriteReport
    quantization: QuantizationFacts | None
    simplify_error: str | None
    export_seconds: float


def int8_calibration(spec: VariantSpec, options: ExportOptions) -> CalibrationSet | None:
    """The calibration crops an int8 export quantizes with (None for other precisions)."""
    if options.precision != "int8":
        return None
    if isinstance(options.calibration, CalibrationSet):
        return options.calibration
    return calibration_set(spec, options.calibration, options.calibration_images)


def build_graph(
    ckpt: CanonicalCheckpoint,
    options: ExportOptions,
    *,
    model: ConvNeXtPose | None = None,
    calibration: CalibrationSet | None = None,
    progress: ProgressCallback | None = None,
) -> BuiltGraph:
    """The graph export_onnx publishes, unchecked: head rewrites, BatchNorm folding (or the fp16
    recipe), the export with the contract's output shapes, onnxsim when asked, int8
    quantization, metadata. model: the loaded model, when the caller has it already;
    calibration: int8's crops (None: int8_calibration's)."""
    stage = progress_callback(progress)
    started = time.perf_counter()
    spec, precision = ckpt.spec, options.precision
    model = model if model is not None else build_loaded_model(ckpt)
    rewritten, applied = rewrite_head(model, options.rewrites)
    module, folded = _export_module(rewritten, precision, options.heatmaps, options.fold)
    exporter = str(options.exporter)
    stage(f"export ({exporter} exporter)", 0, None)
    try:
        proto = trace_to_onnx(module, spec, options.outputs, options.batch, options.opset, exporter)
    except Exception as exc:  # exporter internals raise many types; the message is what counts
        raise OnnxModelError(
            f"ConvNeXtPose-{spec.name}: the {exporter} exporter failed ({first_line(exc)[:300]})"
        ) from None
    _declare_output_shapes(proto, spec, options.outputs, options.batch)
    export_seconds = time.perf_counter() - started
    simplify_error = None
    if options.simplify:
        stage("simplify (onnxsim)", 0, None)
        proto, simplify_error = _simplify(proto)
    quantization = None
    if precision == "int8":
        calibration = calibration if calibration is not None else int8_calibration(spec, options)
        assert calibration is not None  # int8_calibration gives one for int8
        proto, quantization = quantize_int8(proto, calibration, spec, progress=progress)
    metadata = OnnxMetadata.for_spec(
        spec,
        outputs=options.outputs,
        batch=str(options.batch),
        source_sha256=ckpt.metadata.source_sha256 or "",
        weights_sha256=ckpt.metadata.weights_sha256,
        weights=ckpt.metadata.weights,
        converter_version=__version__,
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
        opset=options.opset,
        exporter=exporter,
        simplified=options.simplify and simplify_error is None,
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
    return BuiltGraph(
        proto, metadata, folded, applied, quantization, simplify_error, export_seconds
    )


def _output_paths(
    ckpt: CanonicalCheckpoint, out: Path, options: ExportOptions, protect: tuple[Path, ...]
) -> tuple[Path | None, Path | None]:
    """Refuse outputs over an input or (without force) an existing file; the .ort and .tflite
    paths, each None when not asked for."""
    inputs = (*protect, *([Path(ckpt.raw.path)] if ckpt.raw is not None else []))
    check_output_path(out, inputs, options.force)
    beside: list[Path | None] = []
    for wanted, suffix, option in (
        (options.ort_format, ".ort", "ort_format"),
        (options.target == "tflite", ".tflite", "target"),
    ):
        if not wanted:
            beside.append(None)
            continue
        path = out.with_suffix(suffix)
        if path == out:
            raise OptionError(option, f"needs an output named *.onnx, not {out}")
        beside.append(check_output_path(path, inputs, options.force))
    return beside[0], beside[1]


class _Verdict:
    """The verdict of one graph session against the loaded model: the fp32 floor rule on the
    background reference's images, or the pose change on the crop sets of its precision."""

    def __init__(
        self,
        model: ConvNeXtPose,
        options: ExportOptions,
        spec: VariantSpec,
        seed: int,
        reference: BackgroundReference | None,
        divided_by_mass: bool = False,
    ) -> None:
        self.model, self.options, self.spec, self.reference = model, options, spec, reference
        self.divided_by_mass = divided_by_mass  # the graph's coords come out of a Div
        crops = None if reference is not None else synthetic_crops(spec, POSE_FRAMES, seed)
        self.crop_sets = () if crops is None else pose_crop_sets(spec, crops)
        # PyTorch's coords on the crop sets, made once for every graph judged here (the .ort
        # file is judged on the same crops).
        cpu = torch.device("cpu")
        self.pose_references = [pose_reference(model, c, cpu) for c in self.crop_sets]

    def __call__(
        self, candidate: Session
    ) -> tuple[tuple[ParityReport, ...], tuple[PoseChange, ...]]:
        cpu, batches = torch.device("cpu"), self.options.verdict_batches
        if self.reference is not None:
            limits = fp32_limits(
                self.options.outputs, self.options.atol, divided_by_mass=self.divided_by_mass
            )
            return run_fp32_verdict(
                self.model, candidate, self.reference.images(), batches, limits,
                torch_device=cpu, spec=self.spec, float64_outputs=self.reference.float64_outputs,
            ), ()  # fmt: skip
        return (), run_pose_verdicts(
            self.model,
            candidate,
            self.crop_sets,
            batches,
            precision=self.options.precision,
            references=self.pose_references,
            torch_device=cpu,
            spec=self.spec,
        )


def default_onnx_name(ckpt: CanonicalCheckpoint, precision: str) -> str:
    """ConvNeXtPose_<V>[_random][_<precision>].onnx: the real variant, whatever the file's name."""
    suffix = "_random" if ckpt.metadata.weights == "random" else ""
    suffix += f"_{precision}" if precision != "fp32" else ""
    return f"ConvNeXtPose_{ckpt.spec.name}{suffix}.onnx"


def export_onnx(
    ckpt: CanonicalCheckpoint,
    out: str | Path,
    options: ExportOptions | None = None,
    *,
    protect: tuple[Path, ...] = (),
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Export, check and verify; the file exists at out only if every check passed.

    options: what to export (ExportOptions; None: the defaults). protect: paths never to
    overwrite (the checkpoint's own file is always protected). fp32 graphs are judged by the
    floor rule, fp16/int8 by their pose-change budget (converter.verdicts.tolerances); the
    reference is the model as loaded, whatever the rewrites. progress: told each stage as it
    starts (converter.core.progress): the export, onnxsim, int8 calibration (image by image),
    the verdict.
    """
    started = time.perf_counter()
    options = options if options is not None else ExportOptions()
    stage = progress_callback(progress)
    out, spec = Path(out), ckpt.spec
    ort_out, tflite_out = _output_paths(ckpt, out, options, protect)
    seed = resolve_seed(options.seed)
    if options.precision == "int8":
        stage("int8 calibration crops", 0, None)
    calibration = int8_calibration(spec, options)  # bad data fails before the export
    model = build_loaded_model(ckpt)
    fp32 = options.precision == "fp32"
    batch = max(options.verdict_batches)
    reference: BackgroundReference | None = None
    if fp32 and options.exporter == "torchscript":
        # The float64 reference runs while the graph is traced. TorchScript's tracing state is
        # per thread; torch.export's tracer patches nn.Module for every thread, so the dynamo
        # exporter gets its reference after the export instead.
        reference = BackgroundReference(model, spec, batch, seed, options.heatmaps)
    graph = build_graph(ckpt, options, model=model, calibration=calibration, progress=progress)
    if fp32 and reference is None:
        reference = BackgroundReference(model, spec, batch, seed, options.heatmaps)
    facts = _checked_facts(graph.proto, out, spec, options)
    stage("verdict (onnxruntime CPU against PyTorch)", 0, None)
    verdict = _Verdict(model, options, spec, seed, reference, facts.divides_by_mass("coords"))
    # The graph and its .ort and .tflite files are published together or not at all.
    with output_set(overwrite=options.force) as outputs:
        tmp = outputs.temporary(out)
        onnx.save(graph.proto, str(tmp))
        parity, pose = verdict(open_onnx_session(tmp, "cpu"))
        ort_parity: tuple[ParityReport, ...] = ()
        ort_pose: tuple[PoseChange, ...] = ()
        if ort_out is not None and all(c.passed for c in (*parity, *pose)):
            stage("verdict of the .ort file", 0, None)
            ort_tmp = outputs.temporary(ort_out)
            save_ort_format(tmp, ort_tmp)
            # The .ort file is held to the same check: it is what a phone will run.
            ort_parity, ort_pose = verdict(open_onnx_session(ort_tmp, "cpu", ort_format=True))
        tflite_parity: tuple[ParityReport, ...] = ()
        tflite_runtime = None
        if tflite_out is not None and all(c.passed for c in (*parity, *pose, *ort_parity)):
            stage("onnx2tf conversion and the verdict of the .tflite on LiteRT", 0, None)
            tflite = TfliteSession(tmp)
            tflite_runtime = tflite.providers[0]
            tflite_parity, _ = verdict(tflite)  # fp32 only (ExportOptions)
            outputs.temporary(tflite_out).write_bytes(tflite.model.content)
        report = ExportReport(
            path=str(out),
            variant=spec.name,
            weights=ckpt.metadata.weights,
            weights_sha256=ckpt.metadata.weights_sha256,
            source_sha256=ckpt.metadata.source_sha256 or "",
            opset=options.opset,
            exporter=str(options.exporter),
            batch=str(options.batch),
            outputs=options.outputs,
            simplified=graph.metadata.simplified,
            simplify_error=graph.simplify_error,
            size_bytes=tmp.stat().st_size,
            seconds=time.perf_counter() - started,
            export_seconds=graph.export_seconds,
            graph=facts,
            parity=parity,
            metadata=graph.metadata,
            precision=options.precision,
            folded_batchnorms=graph.folded_batchnorms,
            ort_path=str(ort_out) if (ort_parity or ort_pose) else None,
            quantization=graph.quantization,
            ort_parity=ort_parity,
            pose=pose,
            ort_pose=ort_pose,
            seed=seed,
            rewrites=graph.rewrites,
            tflite_path=str(tflite_out) if tflite_parity else None,
            tflite_runtime=tflite_runtime,
            tflite_parity=tflite_parity,
        )
        if not report.passed:
            raise ParityFailedError(f"{out}: {_first_failure(report)}; no file written", report)
    return report


def _first_failure(report: ExportReport) -> str:
    where = (
        ("onnxruntime CPU", (*report.parity, *report.pose)),
        ("the .ort file", (*report.ort_parity, *report.ort_pose)),
        ("the .tflite on LiteRT", report.tflite_parity),
    )
    for runtime, checks in where:
        for check in checks:
            if isinstance(check, PoseChange):
                if not check.passed:
                    return f"the verdict failed on {runtime} (batch {check.batch}: {check.line()})"
                continue
            for entry in check.outputs:
                if not entry.passed:
                    return f"the verdict failed on {runtime} (batch {check.batch}: {entry.line()})"
    return "the verdict failed on onnxruntime CPU (no output compared)"
