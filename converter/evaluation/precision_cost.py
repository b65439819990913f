"""The accuracy cost of a cheaper graph: its MPJPE next to the fp32 graph's, on the same frames.

Both graphs run through the evaluation pipeline (real preprocessing, flip test, protocol-2
scoring) on a Human3.6M tree, by default the synthetic set. With seeded random weights the MPJPE
itself means nothing, but the change between two precisions of the same weights does.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UsageError
from ..core.variants import get_variant
from ..graphs.metadata import read_onnx_metadata
from ..h36m.dataset import load_dataset
from ..h36m.metrics import BackendComparison
from ..runtimes.sessions import Session, open_onnx_session
from .evaluate import OnnxBackend, evaluate


class _NamedOnnxBackend(OnnxBackend):
    """An onnx backend under its own name, so two graphs can be scored in one run."""

    def __init__(self, session: Session, name: str) -> None:
        super().__init__(session)
        self.name = name


@dataclass(frozen=True)
class PrecisionComparison:
    variant: str
    reference: str  # label: the fp32 graph's precision and path
    candidate: str
    frames: int
    protocol: int
    data: str
    comparison: BackendComparison

    @property
    def change_mm(self) -> float:
        """Candidate's metric minus the reference's (positive: the cheaper graph is worse)."""
        return -self.comparison.difference_mm

    def to_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "reference": self.reference,
            "candidate": self.candidate,
            "frames": self.frames,
            "protocol": self.protocol,
            "data": self.data,
            "metric": self.comparison.metric,
            "reference_mm": self.comparison.values_mm[0],
            "candidate_mm": self.comparison.values_mm[1],
            "change_mm": self.change_mm,
            "mean_joint_distance_mm": self.comparison.mean_distance_mm,
            "max_joint_distance_mm": self.comparison.max_distance_mm,
        }

    def line(self) -> str:
        c = self.comparison
        return (
            f"{self.candidate} vs {self.reference}: {c.metric} {c.values_mm[1]:.2f} vs "
            f"{c.values_mm[0]:.2f} mm, change {self.change_mm:+.3f} mm; joints move "
            f"{c.mean_distance_mm:.2f} mm on average, at most {c.max_distance_mm:.1f} mm "
            f"({self.frames} frames, {self.data})"
        )


def _label(path: Path) -> str:
    meta = read_onnx_metadata(path)
    return f"{meta.precision if meta else 'onnx'} {path.name}"


def compare_onnx_precisions(
    reference: str | Path,
    candidate: str | Path,
    *,
    data: str | Path | None = None,
    protocol: int = 2,
    threads: int | None = None,
    flip: bool = True,
) -> PrecisionComparison:
    """Score both graphs on the same frames; data None means a fresh synthetic set."""
    reference, candidate = Path(reference), Path(candidate)
    metas = [read_onnx_metadata(p) for p in (reference, candidate)]
    variants = {m.variant for m in metas if m is not None}
    if len(variants) != 1 or None in metas:
        raise UsageError(
            f"{reference} and {candidate} must both carry cnp-convert metadata of one variant"
        )
    spec = get_variant(variants.pop())
    backends = [
        _NamedOnnxBackend(open_onnx_session(reference, "cpu", threads), _label(reference)),
        _NamedOnnxBackend(open_onnx_session(candidate, "cpu", threads), _label(candidate)),
    ]
    if backends[0].name == backends[1].name:
        backends[1].name += " (candidate)"
    with tempfile.TemporaryDirectory(prefix="cnp-precision-") as tmp:
        if data is None:
            from ..h36m.synthetic import make_synthetic_h36m

            make_synthetic_h36m(tmp)
            root, label = Path(tmp), "synthetic Human3.6M set"
        else:
            root, label = Path(data), str(data)
        dataset = load_dataset(root, protocol, input_hw=spec.input_hw)
        report = evaluate(dataset, backends, spec, flip=flip, progress=False)
    assert report.comparison is not None  # two backends always compare
    return PrecisionComparison(
        variant=spec.name,
        reference=backends[0].name,
        candidate=backends[1].name,
        frames=report.frames,
        protocol=protocol,
        data=label,
        comparison=report.comparison,
    )
