"""MultiDiffusion (Bar-Tal, Yariv, Lipman, Dekel 2023, "MultiDiffusion: Fusing Diffusion Paths for Controlled Image
Generation"): at every model call the per-pixel average of the base's and the regions' x0 predictions weighted by
their masks, with the paper's bootstrapping. Also the weights the other blending methods share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import torch
from torch import Tensor

from ..masks import grow_mask
from ..sampling.flow_sampling import is_flow
from ..sampling.noise import Seed
from ..sampling.streams import stream_seed
from .base import ONE_TRAJECTORY, RegionRun, RegionSampler, warn_if_covering
from ..validation import check_bounded, check_fraction
from .joint import combined_denoiser, joint_report, run_trajectory, trajectory_sigmas


def weighted_average(predictions: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """`sum_k W_k D_k / sum_k W_k` per pixel (the weights' sum must be > 0 everywhere)."""
    total = sum(w * p for w, p in zip(weights, predictions))
    return total / sum(weights)


def normalized(weights: Sequence[Tensor]) -> list[Tensor]:
    """Each weight divided by the weights' per-pixel sum."""
    total = sum(weights)
    return [w / total for w in weights]


def region_weights(run: RegionRun, overlap_factor: int) -> list[Tensor]:
    """Each region's weight at the latent's size: its soft (bilinearly resized) mask, extended by the mask grown
    by `overlap_factor` latent pixels."""
    out = []
    for region in run.regions:
        grown = grow_mask(region.mask, *run.size, overlap_factor).to(device=run.latent.device, dtype=run.latent.dtype)
        warn_if_covering(grown, "overlap_factor")
        soft = run.at_latent(region.mask)
        out.append(torch.maximum(soft, grown.expand_as(soft)))
    return out


def background_weight(run: RegionRun) -> Tensor:
    """The base's weight `max(0, 1 - sum_k M_k)` (the MultiDiffusion authors' region-based code), M_k the soft
    region masks at the latent's size."""
    return (1 - sum(run.at_latent(r.mask) for r in run.regions)).clamp(min=0)


def constant_backgrounds(run: RegionRun, seed: Seed) -> list[tuple[Tensor, Tensor]]:
    """For each region k a random constant latent `c_k` ~ N(0, 1) per channel and its fixed noise `n_k`, drawn per
    batch element from its seed's stream `stream_seed(seed, "background", k)` (an int seed: the same for every
    element)."""
    batch, channels = run.latent.shape[:2]
    seeds = [seed] * batch if isinstance(seed, int) else list(seed)
    out = []
    for k in range(len(run.regions)):
        colours, noises = [], []
        for s in seeds:
            generator = torch.Generator("cpu").manual_seed(stream_seed(s, "background", k))
            colours.append(torch.randn(channels, 1, 1, generator=generator).expand(channels, *run.size))
            noises.append(torch.randn(channels, *run.size, generator=generator))
        out.append((torch.stack(colours).to(run.latent), torch.stack(noises).to(run.latent)))
    return out


def background_noising(model_sampling: object) -> Callable[[Tensor, Tensor, float], Tensor]:
    """How a constant background `c` meets its noise `n` at sigma `s`: `c + s n`, or under a flow model sampling its
    noising `s n + (1 - s) c`."""
    if is_flow(model_sampling):
        return lambda c, n, s: model_sampling.noise_scaling(s, n, c)  # type: ignore[attr-defined]
    return lambda c, n, s: c + n * s


@dataclass
class MultiDiffusion(RegionSampler):
    """MultiDiffusion (Bar-Tal et al. 2023, eq. 5 with region masks as the views): one trajectory with the base
    sampler's algorithm and schedule over `D(x) = sum_k W_k D_k(x_k) / sum_k W_k`, k over the base and the regions.
    W_base = max(0, 1 - sum_k M_k) (the authors' region-based code; an all-ones background would mix the background
    prompt into every region), W_k = the soft region mask extended by its mask grown by `overlap_factor` latent
    pixels, so that in that band the region and the base are averaged as overlapping views are in the paper.
    Bootstrapping (paper sec. 4.2, 20% of the steps): while `sigma > sigmas[round(bootstrap * steps)]`, region k
    is denoised over a random constant background, `x_k = M_k x + (1 - M_k)(c_k + sigma n_k)` (a flow model
    sampling's noising of `c_k` by `n_k`) with a seeded constant latent `c_k` and fixed noise `n_k` per region, so
    that it paints its own prompt inside its mask rather than continuing the base's content. One batched forward
    per model call when the denoisers share a UNet."""

    overlap_factor: int = 0
    bootstrap: float = 0.2
    name: ClassVar[str] = "multidiffusion"
    consumes: ClassVar[tuple[str, ...]] = ONE_TRAJECTORY

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")
        self.bootstrap = check_fraction(self.bootstrap, "bootstrap")

    def weights(self, run: RegionRun) -> list[Tensor]:
        """The base's and each region's averaging weight `[B,1,h,w]`."""
        return [background_weight(run)] + region_weights(run, self.overlap_factor)

    def _sample(self, run: RegionRun) -> Tensor:
        weights = self.weights(run)
        sigmas = trajectory_sigmas(run)
        masks = [run.at_latent(r.mask) for r in run.regions]
        backgrounds = constant_backgrounds(run, run.seed)
        until = float(sigmas[min(round(self.bootstrap * (len(sigmas) - 1)), len(sigmas) - 1)])

        def inputs(x: Tensor, sigma: Tensor) -> list[Tensor]:
            s = float(sigma.reshape(-1)[0])
            if s <= until:
                return [x] * len(weights)
            return [x] + [x * m + noised(c, n, s) * (1 - m) for m, (c, n) in zip(masks, backgrounds)]

        noised = background_noising(run.base.model_sampling)
        shares = normalized(weights)
        denoiser = combined_denoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions],
                                     lambda predictions, sigma: weighted_average(predictions, weights), inputs)
        return run_trajectory(run, denoiser, sigmas, joint_report(run, self.name, lambda sigma: shares))
