"""One trajectory, the denoisers' x0 blended with the grown (optionally feathered) masks at every model call."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

from torch import Tensor

from ..masks import feather_mask, grow_mask
from ..sampling.noise import NoiseStream
from ..sampling.sample import integrate
from ..sampling.unet_denoiser import JointDenoiser
from .base import RegionRun, RegionSampler, warn_if_covering
from .checks import check_overlap


def blend(predictions: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """`D = D_base`, then for each region k in order `D = D * (1 - w_k) + D_k * w_k` (later regions on top)."""
    out = predictions[0]
    for prediction, w in zip(predictions[1:], weights):
        w = w.to(device=out.device, dtype=out.dtype)
        out = out * (1 - w) + prediction * w
    return out


class FusedDenoiser:
    """The blended denoiser over the base and region denoisers, all evaluated at the same `(x, sigma)`, in one
    batched forward when they share a UNet (`JointDenoiser`)."""

    def __init__(self, denoisers: Sequence[object], weights: Sequence[Tensor]) -> None:
        self.joint = JointDenoiser(denoisers)
        self.weights = list(weights)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return blend(self.joint(x, sigma), self.weights)


class GuidedFusedDenoiser(FusedDenoiser):
    """A `FusedDenoiser` whose members all give their unconditional prediction: `with_uncond` blends both."""

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        joint = getattr(self.joint, "with_uncond", None)
        pairs = joint(x, sigma) if joint is not None else [d.with_uncond(x, sigma) for d in self.joint.denoisers]
        return blend([p[0] for p in pairs], self.weights), blend([p[1] for p in pairs], self.weights)


def fused_denoiser(denoisers: Sequence[object], weights: Sequence[Tensor]) -> FusedDenoiser:
    """A `GuidedFusedDenoiser` when every member has `with_uncond` (the cfg_pp samplers need it), else a plain one."""
    guided = all(callable(getattr(d, "with_uncond", None)) for d in denoisers)
    return (GuidedFusedDenoiser if guided else FusedDenoiser)(denoisers, weights)


@dataclass
class Fused(RegionSampler):
    """One trajectory with the base sampler's algorithm and schedule over `blend` of the denoisers, weighted by
    each region's mask grown by `overlap_factor` latent pixels and blurred by `feather` (Gaussian, std
    feather/2; 0 = hard). Multistep samplers keep their history over the whole run, which per-step calls lose."""

    overlap_factor: int = 10
    feather: float = 0.0
    name: ClassVar[str] = "fused"

    def __post_init__(self) -> None:
        self.overlap_factor = check_overlap(self.overlap_factor)
        if isinstance(self.feather, bool) or not isinstance(self.feather, (int, float)) or not (
                math.isfinite(self.feather) and 0 <= self.feather <= 64):
            raise ValueError(f"feather must be a number in [0, 64] (latent pixels), got {self.feather!r}")

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
        sigmas = run.base.sigmas(run.adv_steps)[run.start:].to(run.latent.device)
        x = run.base.model_sampling.noise_scaling(float(sigmas[0]), NoiseStream(run.seed)(run.latent), run.latent)
        denoiser = fused_denoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions], weights)
        return integrate(denoiser, x, sigmas, run.base.sampler, run.seed, run.report(None, "fused", None, run.start))
