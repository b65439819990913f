"""Run both backends on verdict inputs and judge them: the one verdict of export and verify.

Inputs nobody can tune to: every run draws a fresh seed (reported; pass it back to repeat the
run) for seeded noise images in the model's real input range, and adds real-preprocessed crops of
people chosen by the same seed.

- fp32 graphs: the floor rule (converter.verdicts.parity), against PyTorch in float64.
- fp16 / int8 / bf16 runs: the pose change in millimetres, against a budget per precision, on
  two sets of crops judged apart: people of a Human3.6M-style set (the synthetic one by
  default, chosen by the seed) and the shipped real photos, mirrored, scaled and rotated
  (converter.h36m.photos). Drawn figures exercise shapes a trained network was never shown;
  real pixels exercise the activations a deployment sees.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..core.errors import CheckFailedError, OptionError
from ..core.model import ConvNeXtPose
from ..core.variants import VariantSpec
from ..h36m.crops import Crops
from ..h36m.metrics import back_project, eval_joint_indices
from ..h36m.photos import photo_crops
from ..h36m.preprocess import normalize_images, seeded_images
from ..h36m.synthetic import synthetic_crops
from ..runtimes.sessions import Session, strict_fp32
from .parity import (
    Limit,
    ParityReport,
    PoseBudget,
    PoseChange,
    judge_outputs,
    pose_change,
    softmax_sum_terms,
)
from .tolerances import pose_budget

FP32_CROPS = 4  # real-preprocessed crops added to the seeded images of an fp32 verdict


class ParityFailedError(CheckFailedError):
    """A verdict ran and failed (exit 1); .report holds the evidence for printing."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


MAX_SEED = 2**63


def resolve_seed(seed: int | None) -> int:
    """The given seed, checked; or, for None, a fresh one nobody chose (the inputs of one run
    cannot be known before it starts)."""
    if seed is None:
        return secrets.randbelow(2**31 - 1)
    if isinstance(seed, bool) or not 0 <= int(seed) < MAX_SEED:
        raise OptionError("seed", f"must be a non-negative integer below 2**63, not {seed}")
    return int(seed)


def verdict_images(spec: VariantSpec, samples: int, seed: int, crops: int = FP32_CROPS):
    """(N, 3, H, W) float32: samples seeded noise images, then crops real-preprocessed crops."""
    noise = normalize_images(seeded_images(samples, seed, spec.input_hw), spec)
    if crops <= 0:
        return noise
    people = synthetic_crops(spec, crops, seed).images
    return np.ascontiguousarray(np.concatenate([noise, people]))


def _torch_outputs(
    model: ConvNeXtPose,
    images: np.ndarray,
    device: torch.device,
    heatmaps: bool,
    moments: bool = False,
) -> dict[str, np.ndarray]:
    dtype = next(model.parameters()).dtype
    forward = model.forward_moments if moments else model.forward_heatmaps
    with torch.inference_mode(), strict_fp32(device):
        x = torch.from_numpy(images).to(device=device, dtype=dtype)
        coords, maps = forward(x)
        out = {"coords": coords.cpu().numpy()}
        if heatmaps:
            out["heatmaps"] = maps.cpu().numpy()
    return out


def floor_outputs(
    model: ConvNeXtPose, images: np.ndarray, device: torch.device, heatmaps: bool
) -> dict[str, np.ndarray]:
    """PyTorch fp32's outputs for the floor: the model's own arithmetic, with the soft-argmax
    divided by its summed mass (MomentSoftArgmax, the same function in real arithmetic), so the
    softmax sum's rounding, held to its own bound (parity.softmax_sum_allowance), is not in it."""
    return _torch_outputs(model, images, device, heatmaps, moments=True)


def float64_reference(model: ConvNeXtPose) -> ConvNeXtPose:
    """A float64 copy on the CPU: the reference both fp32 backends are measured against."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()


def _float64_outputs(
    reference: ConvNeXtPose, images: np.ndarray, heatmaps: bool
) -> dict[str, np.ndarray]:
    """The float64 reference's outputs on images (float32 inputs widened, not re-drawn), and
    "sum_terms": per image and joint, softmax_sum_terms of its probability volume (one image at
    a time: an L volume is 18 x 262,144 float64 values)."""
    parts: dict[str, list[np.ndarray]] = {"coords": [], "sum_terms": []}
    if heatmaps:
        parts["heatmaps"] = []
    with torch.inference_mode():
        for index in range(images.shape[0]):
            x = torch.from_numpy(images[index : index + 1].astype(np.float64))
            coords, maps = reference.forward_heatmaps(x)
            volume = reference.probabilities(maps)
            parts["coords"].append(coords.numpy())
            parts["sum_terms"].append(softmax_sum_terms(volume.numpy()))
            if heatmaps:
                parts["heatmaps"].append(maps.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


class BackgroundReference:
    """The fp32 verdict's inputs and the float64 reference's outputs, made on a worker thread.

    This overlaps the caller's export. The float64 copy is made before the thread starts, so the
    thread shares nothing with the caller; rendering the crops (OpenCV) and the convolutions
    release the GIL. The images come first, so the caller can run PyTorch fp32 and the graph on
    them while the float64 forward goes on. A normal interpreter exit waits for the worker (about
    as long as the float64 forward); the command line's exit does not (converter.cli.main).
    """

    def __init__(
        self, model: ConvNeXtPose, spec: VariantSpec, samples: int, seed: int, heatmaps: bool
    ) -> None:
        reference = float64_reference(model)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnp-float64-reference")
        self._images = pool.submit(verdict_images, spec, samples, seed, FP32_CROPS)
        self._float64 = pool.submit(
            lambda: _float64_outputs(reference, self._images.result(), heatmaps)
        )
        pool.shutdown(wait=False)  # the submitted work still runs; nothing more can be added

    def images(self) -> np.ndarray:
        return self._images.result()

    def float64_outputs(self) -> dict[str, np.ndarray]:
        return self._float64.result()


def _cyclic_batches(samples: int, batch: int) -> list[list[int]]:
    """Indices of full batches covering every sample (fixed-batch graphs need full batches)."""
    return [
        [(run * batch + k) % samples for k in range(batch)]
        for run in range(math.ceil(samples / batch))
    ]


def run_fp32_verdict(
    model: ConvNeXtPose,
    session: Session,
    images: np.ndarray,
    batches: Sequence[int],
    limits: Mapping[str, Limit],
    *,
    torch_device: torch.device,
    spec: VariantSpec,
    output_map: Mapping[str, str] | None = None,
    reference: ConvNeXtPose | None = None,
    float64_outputs: Callable[[], Mapping[str, np.ndarray]] | None = None,
) -> tuple[ParityReport, ...]:
    """onnxruntime and PyTorch fp32, both against PyTorch float64; one report per batch size.

    output_map: our output name -> the graph's (defaults to the same names).
    reference: the float64 model, when the caller already made one.
    float64_outputs: gives its outputs on images, when the caller is already computing them; it
    is called last, after both fp32 backends ran.
    PyTorch fp32 runs once per image, in chunks of the largest batch: its error (the floor) is a
    property of fp32 arithmetic on these inputs, the same for every batch report (floor_outputs;
    coords also get the softmax sum's bound from the reference's volumes, parity.judge_output).
    The graph runs at each batch size: one that only works at one size is a failure looked for.
    """
    output_map = dict(output_map or {name: name for name in limits})
    heatmaps = "heatmaps" in output_map
    model = model.to(torch_device).eval()
    chunk = max(batches)
    parts = [
        floor_outputs(model, images[start : start + chunk], torch_device, heatmaps)
        for start in range(0, images.shape[0], chunk)
    ]
    fp32 = {name: np.concatenate([part[name] for part in parts]) for name in output_map}
    candidates = []
    for batch in batches:
        groups = _cyclic_batches(images.shape[0], batch)
        cands: dict[str, list[np.ndarray]] = {name: [] for name in output_map}
        for index in groups:
            cand = session.run(np.ascontiguousarray(images[index]))
            for name, graph_name in output_map.items():
                cands[name].append(cand[graph_name])
        order = [i for index in groups for i in index]
        candidates.append((batch, order, {k: np.concatenate(v) for k, v in cands.items()}))
    if float64_outputs is not None:
        ref64 = float64_outputs()
    else:
        reference = reference if reference is not None else float64_reference(model)
        ref64 = _float64_outputs(reference, images, heatmaps)
    sum_terms = ref64.get("sum_terms")  # absent: no softmax sum bound (stricter, never looser)
    return tuple(
        judge_outputs(
            {name: ref64[name][order] for name in output_map},
            {name: fp32[name][order] for name in output_map},
            cands,
            {name: limits[name] for name in output_map},
            spec=spec,
            batch=batch,
            sum_terms=None if sum_terms is None else sum_terms[order],
        )
        for batch, order, cands in candidates
    )


def crops_to_mm(coords: np.ndarray, crops: Crops, spec: VariantSpec) -> np.ndarray:
    return back_project(
        coords,
        crops.boxes,
        crops.root_depths,
        crops.focals,
        crops.centers,
        spec.heatmap_hw,
        spec.depth_dim,
        float(spec.bbox_3d_shape_mm[2]),
    )


def pose_crop_sets(spec: VariantSpec, people: Crops) -> tuple[Crops, ...]:
    """The crop sets a reduced precision is judged on: people (synthetic or a dataset's frames)
    and the real photo crops."""
    return (people, photo_crops(spec))


POSE_REFERENCE_CHUNK = 8  # crops per PyTorch forward of the pose reference (bounds its memory)


def pose_reference(model: ConvNeXtPose, crops: Crops, torch_device: torch.device) -> np.ndarray:
    """PyTorch fp32's coords on every crop, in heatmap units: what a reduced precision's graph is
    compared with. It does not depend on the graph's batch size, so one reference serves every
    batch and every graph judged on these crops."""
    model = model.to(torch_device).eval()
    return np.concatenate(
        [
            _torch_outputs(
                model,
                np.ascontiguousarray(crops.images[start : start + POSE_REFERENCE_CHUNK]),
                torch_device,
                False,
            )["coords"]
            for start in range(0, len(crops), POSE_REFERENCE_CHUNK)
        ]
    )


def run_pose_verdicts(
    model: ConvNeXtPose,
    session: Session,
    crop_sets: Sequence[Crops],
    batches: Sequence[int],
    *,
    precision: str,
    torch_device: torch.device,
    references: Sequence[np.ndarray] | None = None,
    **kwargs,
) -> tuple[PoseChange, ...]:
    """run_pose_verdict for every crop set at every batch size (each its own PoseChange), each
    set held to its precision's budget for its kind (photos, or drawn figures).

    references: pose_reference of each crop set, when the caller keeps them for several graphs;
    else each is computed here once, for all batch sizes."""
    if references is None:
        references = [pose_reference(model, crops, torch_device) for crops in crop_sets]
    if len(references) != len(crop_sets):
        raise ValueError(f"{len(references)} pose references for {len(crop_sets)} crop sets")
    return tuple(
        run_pose_verdict(
            model,
            session,
            crops,
            batch,
            precision=precision,
            budget=pose_budget(precision, drawn=crops.drawn),
            torch_device=torch_device,
            reference=reference,
            **kwargs,
        )
        for crops, reference in zip(crop_sets, references, strict=True)
        for batch in batches
    )


def run_pose_verdict(
    model: ConvNeXtPose,
    session: Session,
    crops: Crops,
    batch: int,
    *,
    precision: str,
    budget: PoseBudget,
    torch_device: torch.device,
    spec: VariantSpec,
    coords_name: str = "coords",
    reference: np.ndarray | None = None,
) -> PoseChange:
    """PyTorch fp32 (reference: pose_reference of these crops, computed when not given) and the
    graph at this batch size on the same crops, back-projected to camera mm, compared."""
    if reference is None:
        reference = pose_reference(model, crops, torch_device)
    if reference.shape[0] != len(crops):
        raise ValueError(f"the reference has {reference.shape[0]} crops, not {len(crops)}")
    groups = _cyclic_batches(len(crops), batch)
    candidate = [
        session.run(np.ascontiguousarray(crops.images[index]))[coords_name] for index in groups
    ]
    # Cyclic batches repeat a few crops at the end; each crop counts once.
    unique = len(crops)
    order = [i for index in groups for i in index][:unique]
    taken = crops.take(order)
    return pose_change(
        crops_to_mm(reference[order], taken, spec),
        crops_to_mm(np.concatenate(candidate)[:unique], taken, spec),
        eval_joint_indices(spec.joint_names),
        spec.joint_names,
        precision=precision,
        source=crops.source,
        budget=budget,
        batch=batch,
    )
