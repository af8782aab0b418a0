"""Regional sampling (upstream's RegionalSampler): a base sampler outside all regions and one sampler per
region, alternated step by step with the regions' masks grown by their overlap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .masks import grow_mask, resize_mask
from .region_inputs import check_common, check_overlap, check_region_mask, tagged
from .sampling.ksampler import KSampler, denoise_to_steps
from .sampling.noise import Seed
from .sampling.recovery import check_recovery, sample_step_with_recovery
from .sampling.samplers import Callback

SEED_2ND_MODES = ("ignore", "fixed", "seed+seed_2nd", "seed-seed_2nd")
SEED_MODULUS = 1125899906842624  # 2**50, upstream's seed range


@dataclass
class Region:
    """A region: its mask (1 inside), its sampler, and its overlap (mask growth in latent pixels)."""

    mask: Tensor
    sampler: KSampler
    overlap_factor: int = 10


def second_seed(seed: Seed, seed_2nd: int, mode: str) -> Seed:
    """The seed of the steps after the base-only ones: unchanged, `seed_2nd`, or `seed +/- seed_2nd` mod 2^50."""
    if mode not in SEED_2ND_MODES:
        raise ValueError(f"seed_2nd_mode must be one of {', '.join(SEED_2ND_MODES)}; got {mode!r}")
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if mode == "ignore":
        out = seeds
    elif mode == "fixed":
        out = [seed_2nd] * len(seeds)
    else:
        sign = 1 if mode == "seed+seed_2nd" else -1
        out = [(s + sign * seed_2nd) % SEED_MODULUS for s in seeds]
    return out[0] if isinstance(seed, int) else out


def regional_sample(
    seed: Seed,
    steps: int,
    denoise: float,
    latent: Tensor,
    base_sampler: KSampler,
    regions: Sequence[Region],
    base_only_steps: int = 1,
    restore_latent: bool = True,
    additional_mode: str = "ratio between",
    additional_sampler: str = "AUTO",
    additional_sigma_ratio: float = 0.3,
    seed_2nd: int = 0,
    seed_2nd_mode: str = "ignore",
    callback: Callback | None = None,
) -> Tensor:
    """Upstream's regional route, for N regions.

    1. `base_only_steps` steps of the base sampler over the whole latent (leftover noise kept when
       `seed_2nd_mode` is `ignore`; otherwise they finish to sigma 0 and noise is added again with the 2nd seed).
    2. For each remaining step i: the base sampler with the inverse of the union of the (ceiled) region masks,
       then each region's sampler with its grown mask; with `restore_latent` the latent outside the grown mask
       is restored from a masked composite `x*(1-g) + region_out*g` after each region.
    3. Upstream closes with a base call over the slice `[adv_steps, adv_steps + 1)`, which has nothing left to
       do once the loop reached sigma 0, so it is not repeated here.
    Stochastic/UniPC samplers get the recovery pass of `additional_mode` (see `sampling.recovery`).
    """
    check_common(latent, seed, steps, denoise)
    if not regions:
        raise ValueError("regions must hold at least one Region")
    if isinstance(base_only_steps, bool) or not isinstance(base_only_steps, int) or base_only_steps < 0:
        raise ValueError(f"base_only_steps must be an integer >= 0, got {base_only_steps!r}")
    check_recovery(additional_mode, additional_sampler, additional_sigma_ratio)
    later_seed = second_seed(seed, seed_2nd, seed_2nd_mode)
    height, width = latent.shape[-2:]
    masks = []
    for k, region in enumerate(regions):
        check_region_mask(region.mask, latent, f"regions[{k}].mask")
        check_overlap(region.overlap_factor, f"regions[{k}].overlap_factor")
        masks.append(resize_mask(region.mask, height, width))
    covered = torch.stack([m.ceil().expand(latent.shape[0], -1, -1, -1) for m in masks]).amax(0)
    inverse = (covered == 0).to(latent.dtype)
    grown = [grow_mask(r.mask, height, width, r.overlap_factor) for r in regions]
    adv_steps, start = denoise_to_steps(steps, denoise)
    recovery = dict(mode=additional_mode, recovery_sampler=additional_sampler, ratio=additional_sigma_ratio)

    x = latent
    leftover = False
    if base_only_steps > 0:
        leftover = seed_2nd_mode == "ignore"
        end = min(start + base_only_steps, adv_steps)
        x = base_sampler.sample_advanced(True, seed, adv_steps, x, start, end, leftover, callback=tagged(callback, start, "base"))
    add_noise = not leftover
    for i in range(start + base_only_steps, adv_steps):
        x = sample_step_with_recovery(base_sampler, add_noise, later_seed, adv_steps, x, i, i + 1, True, inverse,
                                      callback=tagged(callback, i, "base"), **recovery)
        for k, (region, g) in enumerate(zip(regions, grown)):
            out = sample_step_with_recovery(region.sampler, False, later_seed, adv_steps, x, i, i + 1, True, g,
                                            callback=tagged(callback, i, f"region{k}"), **recovery)
            x = x * (1 - g) + out * g if restore_latent else out
        add_noise = False
    return x
