"""Network inputs made by the real preprocessing, with what is needed to map them to millimetres.

Verdicts use these next to seeded noise images: a crop of a person exercises the activation
ranges a deployed graph sees, and its box, root depth and camera turn heatmap units into
camera millimetres (metrics.back_project).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.variants import VariantSpec
from .dataset import H36MDataset
from .preprocess import load_input


@dataclass(frozen=True)
class Crops:
    images: np.ndarray  # (N, 3, H, W) float32, normalized as the network expects
    boxes: np.ndarray  # (N, 4) processed boxes x, y, w, h in image pixels
    root_depths: np.ndarray  # (N,) root depth, camera mm
    focals: np.ndarray  # (N, 2)
    centers: np.ndarray  # (N, 2)
    source: str  # where the crops come from, for reports
    drawn: bool = False  # drawn figures (the synthetic set), not photos of people

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def take(self, index: np.ndarray | list[int]) -> Crops:
        index = np.asarray(index, dtype=int)
        return Crops(
            self.images[index],
            self.boxes[index],
            self.root_depths[index],
            self.focals[index],
            self.centers[index],
            self.source,
            self.drawn,
        )


def dataset_crops(dataset: H36MDataset, spec: VariantSpec, count: int, seed: int) -> Crops:
    """count frames of a Human3.6M test set, drawn by seed, through the reference crop."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(dataset.samples))[: min(count, len(dataset.samples))]
    samples = [dataset.samples[int(i)] for i in sorted(chosen)]
    return Crops(
        images=np.stack([load_input(s.image_path, s.bbox, spec, s.image_size) for s in samples]),
        boxes=np.array([s.bbox for s in samples], dtype=np.float64),
        root_depths=np.array([s.root_depth for s in samples], dtype=np.float64),
        focals=np.array([s.focal for s in samples], dtype=np.float64),
        centers=np.array([s.center for s in samples], dtype=np.float64),
        source=f"{len(samples)} frames of {dataset.layout.root}",
    )
