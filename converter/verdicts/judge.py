"""Run both backends on verdict inputs and judge them: the one verdict of export and verify.

Inputs nobody can tune to: every run draws a fresh seed (reported; pass it back to repeat the
run) for seeded noise images in the model's real input range, and adds real-preprocessed crops of
people chosen by the same seed.

- fp32 graphs: the floor rule (converter.verdicts.parity), against PyTorch in float64.
- fp16 / int8 graphs: the pose change in millimetres on crops, against a budget per precision.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from converter.checkpoints.fabricate import normalize_images, seeded_images
from converter.core.errors import CheckFailedError, UsageError
from converter.core.model import ConvNeXtPose
from converter.core.variants import VariantSpec
from converter.h36m.crops import Crops
from converter.h36m.metrics import back_project, eval_joint_indices
from converter.h36m.synthetic import synthetic_crops
from converter.verdicts.parity import (
    Limit,
    ParityReport,
    PoseBudget,
    PoseChange,
    judge_outputs,
    pose_change,
)
from converter.verdicts.runtime import OnnxSession, strict_fp32

FP32_CROPS = 4  # real-preprocessed crops added to the seeded images of an fp32 verdict
POSE_FRAMES = 32  # crops a reduced-precision verdict judges the pose change on


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
        raise UsageError(f"--seed must be a non-negative integer below 2**63, not {seed}")
    return int(seed)


def verdict_images(spec: VariantSpec, samples: int, seed: int, crops: int = FP32_CROPS):
    """(N, 3, H, W) float32: samples seeded noise images, then crops real-preprocessed crops."""
    noise = normalize_images(seeded_images(samples, seed, spec.input_hw), spec)
    if crops <= 0:
        return noise
    people = synthetic_crops(spec, crops, seed).images
    return np.ascontiguousarray(np.concatenate([noise, people]))


def _torch_outputs(
    model: ConvNeXtPose, images: np.ndarray, device: torch.device, heatmaps: bool
) -> dict[str, np.ndarray]:
    dtype = next(model.parameters()).dtype
    with torch.inference_mode(), strict_fp32(device):
        x = torch.from_numpy(images).to(device=device, dtype=dtype)
        coords, maps = model.forward_heatmaps(x)
        out = {"coords": coords.cpu().numpy()}
        if heatmaps:
            out["heatmaps"] = maps.cpu().numpy()
    return out


def float64_reference(model: ConvNeXtPose) -> ConvNeXtPose:
    """A float64 copy on the CPU: the reference both fp32 backends are measured against."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()


def _cyclic_batches(samples: int, batch: int) -> list[list[int]]:
    """Indices of full batches covering every sample (fixed-batch graphs need full batches)."""
    return [
        [(run * batch + k) % samples for k in range(batch)]
        for run in range(math.ceil(samples / batch))
    ]


def run_fp32_verdict(
    model: ConvNeXtPose,
    session: OnnxSession,
    images: np.ndarray,
    batches: Sequence[int],
    limits: Mapping[str, Limit],
    *,
    torch_device: torch.device,
    spec: VariantSpec,
    output_map: Mapping[str, str] | None = None,
    reference: ConvNeXtPose | None = None,
) -> tuple[ParityReport, ...]:
    """onnxruntime and PyTorch fp32, both against PyTorch float64; one report per batch size.

    output_map: our output name -> the graph's (defaults to the same names).
    reference: the float64 model, when the caller already made one.
    """
    output_map = dict(output_map or {name: name for name in limits})
    heatmaps = "heatmaps" in output_map
    model = model.to(torch_device).eval()
    reference = reference if reference is not None else float64_reference(model)
    ref64 = _torch_outputs(reference, images.astype(np.float64), torch.device("cpu"), heatmaps)
    reports = []
    for batch in batches:
        groups = _cyclic_batches(images.shape[0], batch)
        torch32: dict[str, list[np.ndarray]] = {name: [] for name in output_map}
        cands: dict[str, list[np.ndarray]] = {name: [] for name in output_map}
        for index in groups:
            chunk = np.ascontiguousarray(images[index])
            fp32 = _torch_outputs(model, chunk, torch_device, heatmaps)
            cand = session.run(chunk)
            for name, graph_name in output_map.items():
                torch32[name].append(fp32[name])
                cands[name].append(cand[graph_name])
        order = [i for index in groups for i in index]
        reports.append(
            judge_outputs(
                {name: ref64[name][order] for name in output_map},
                {k: np.concatenate(v) for k, v in torch32.items()},
                {k: np.concatenate(v) for k, v in cands.items()},
                {name: limits[name] for name in output_map},
                spec=spec,
                batch=batch,
            )
        )
    return tuple(reports)


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


def run_pose_verdict(
    model: ConvNeXtPose,
    session: OnnxSession,
    crops: Crops,
    batch: int,
    *,
    precision: str,
    budget: PoseBudget,
    torch_device: torch.device,
    spec: VariantSpec,
    coords_name: str = "coords",
) -> PoseChange:
    """PyTorch fp32 and the graph on the same crops, back-projected to camera mm, compared."""
    model = model.to(torch_device).eval()
    groups = _cyclic_batches(len(crops), batch)
    reference, candidate = [], []
    for index in groups:
        chunk = np.ascontiguousarray(crops.images[index])
        reference.append(_torch_outputs(model, chunk, torch_device, False)["coords"])
        candidate.append(session.run(chunk)[coords_name])
    # Cyclic batches repeat a few crops at the end; each crop counts once.
    unique = len(crops)
    order = [i for index in groups for i in index][:unique]
    taken = crops.take(order)
    return pose_change(
        crops_to_mm(np.concatenate(reference)[:unique], taken, spec),
        crops_to_mm(np.concatenate(candidate)[:unique], taken, spec),
        eval_joint_indices(spec.joint_names),
        spec.joint_names,
        precision=precision,
        source=crops.source,
        budget=budget,
        batch=batch,
    )
