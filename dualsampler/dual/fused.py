"""One trajectory, the denoisers' x0 blended with the grown (optionally feathered) masks at every model call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from torch import Tensor

from ..masks import feather_mask, grow_mask
from .base import ONE_TRAJECTORY, RegionRun, RegionSampler, warn_if_covering
from ..validation import check_bounded
from .joint import combined_denoiser, run_trajectory, trajectory_sigmas


def blend(predictions: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """`D = D_base`, then for each region k in order `D = D * (1 - w_k) + D_k * w_k` (later regions on top)."""
    out = predictions[0]
    for prediction, w in zip(predictions[1:], weights):
        w = w.to(device=out.device, dtype=out.dtype)
        out = out * (1 - w) + prediction * w
    return out


@dataclass
class Fused(RegionSampler):
    """One trajectory with the base sampler's algorithm and schedule over `blend` of the denoisers, weighted by
    each region's mask grown by `overlap_factor` latent pixels and blurred by `feather` (Gaussian, std
    feather/2; 0 = hard). Multistep samplers keep their history over the whole run, which per-step calls lose."""

    overlap_factor: int = 10
    feather: float = 0.0
    name: ClassVar[str] = "fused"
    consumes: ClassVar[tuple[str, ...]] = ONE_TRAJECTORY

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")
        self.feather = check_bounded(self.feather, "fused_feather", "feather")

    def weights(self, run: RegionRun) -> list[Tensor]:
        """Each region's blend weight at the latent's size."""
        out = []
        for region in run.regions:
            grown = grow_mask(region.mask, *run.size, self.overlap_factor)
            warn_if_covering(grown, "overlap_factor")
            out.append(feather_mask(grown, self.feather).to(device=run.latent.device, dtype=run.latent.dtype))
        return out

    def _sample(self, run: RegionRun) -> Tensor:
        weights = self.weights(run)
        denoiser = combined_denoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions],
                                     lambda predictions, sigma: blend(predictions, weights))
        return run_trajectory(run, denoiser, trajectory_sigmas(run), run.report(None, "fused", None, run.start))
