"""Per-step alternation (SPEC §6, the Impact Pack's original TwoAdvancedSamplersForMask loop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..masks import grow_mask
from ..sampling.ksampler import slice_schedule
from .base import RegionRun, RegionSampler, union_inverse, warn_if_covering
from ..validation import check_bounded


@dataclass
class Alternate(RegionSampler):
    """For each step `i`: the base sampler steps `i -> i+1` where the union of the masks is not 1 (noise added on the
    first step only, leftover noise kept), then each region's sampler steps `i -> i+1` inside its mask grown by
    `overlap_factor` latent pixels (leftover noise kept but on the last step). Every call is a fresh sampler call,
    so multistep samplers lose their history and ancestral ones redraw the seed's noise, as upstream."""

    overlap_factor: int = 10
    name: ClassVar[str] = "alternate"

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")

    def _sample(self, run: RegionRun) -> Tensor:
        height, width = run.size
        inverse = union_inverse(run)
        grown = []
        for region in run.regions:
            g = grow_mask(region.mask, height, width, self.overlap_factor).to(run.latent.dtype)
            warn_if_covering(g, "overlap_factor")
            grown.append(g.expand(run.latent.shape[0], 1, height, width))
        base_sigmas = run.base.sigmas(run.adv_steps)
        region_sigmas = [r.sampler.sigmas(run.adv_steps) for r in run.regions]
        x = run.latent
        for i in range(run.start, run.adv_steps):
            last = i + 1 == run.adv_steps
            x = run.base.run_slice(i == run.start, run.seed, x, slice_schedule(base_sigmas, i, i + 1, True), inverse,
                                   run.report(i, "base", inverse))
            for region, g, sigmas, role in zip(run.regions, grown, region_sigmas, run.roles()[1:]):
                x = region.sampler.run_slice(False, run.seed, x, slice_schedule(sigmas, i, i + 1, not last), g,
                                             run.report(i, role, g))
        return x
