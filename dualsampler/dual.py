"""Two samplers and a mask (SPEC §5-6): the base sampler outside the mask, the mask sampler inside it,
with the mask grown by `overlap_factor` latent pixels so that both work the band between them."""

from __future__ import annotations

from torch import Tensor

from .masks import feather_mask, grow_mask
from .sampling.noise_mask import latent_noise_mask
from .regional import Region, regional_sample
from .region_inputs import check_common, check_overlap, check_region_mask, check_settings, tagged
from .sampling.ksampler import KSampler, denoise_to_steps
from .sampling.noise import NoiseStream, Seed
from .sampling.sample import sample
from .sampling.samplers import Callback
from .sampling.unet_denoiser import JointDenoiser

MODES = ("seed", "regional", "fused")


def inverse_mask(mask: Tensor) -> Tensor:
    """`(mask != 1)`: 1 wherever the mask is not fully on."""
    return (mask != 1).to(mask.dtype)


def two_samplers_for_mask(
    latent: Tensor,
    base_sampler: KSampler,
    mask_sampler: KSampler,
    mask: Tensor,
    seed: Seed,
    steps: int,
    denoise: float = 1.0,
    callback: Callback | None = None,
    *,
    mask_seed: Seed | None = None,
    mask_steps: int | None = None,
    mask_denoise: float | None = None,
) -> Tensor:
    """SPEC §5: the base sampler's whole run with `noise_mask = (mask != 1)`, then the mask sampler's whole
    run over that result with `noise_mask = mask` (each adds its own seeded noise). The mask sampler uses
    `seed`, `steps` and `denoise` too unless `mask_seed`, `mask_steps`, `mask_denoise` say otherwise (upstream's
    samplers each carry their own, which the upscaler's per-sampler hooks change independently)."""
    mask_seed = seed if mask_seed is None else mask_seed
    mask_steps = steps if mask_steps is None else mask_steps
    mask_denoise = denoise if mask_denoise is None else mask_denoise
    check_common(latent, seed, steps, denoise)
    check_settings(latent, mask_seed, mask_steps, mask_denoise)
    mask = check_region_mask(mask, latent)
    x = base_sampler.sample(latent, seed, steps, denoise, inverse_mask(mask), tagged(callback, None, "base"))
    return mask_sampler.sample(x, mask_seed, mask_steps, mask_denoise, mask, tagged(callback, None, "mask"))


def two_advanced_samplers_for_mask(
    seed: Seed,
    steps: int,
    denoise: float,
    latent: Tensor,
    base_sampler: KSampler,
    mask_sampler: KSampler,
    mask: Tensor,
    overlap_factor: int = 10,
    mode: str = "seed",
    *,
    feather: float = 0.0,
    base_only_steps: int = 1,
    restore_latent: bool = True,
    additional_mode: str = "ratio between",
    additional_sampler: str = "AUTO",
    additional_sigma_ratio: float = 0.3,
    seed_2nd: int = 0,
    seed_2nd_mode: str = "ignore",
    callback: Callback | None = None,
) -> Tensor:
    """Alternate two samplers per step (`seed`, SPEC §6), route through the regional sampler (`regional`,
    with `base_only_steps`, `restore_latent`, the recovery and second-seed options), or blend the two
    denoisers' x0 with the grown mask inside ONE trajectory (`fused`, with optional `feather` radius).

    A full mask (all ones) leaves the base sampler nothing to do in `seed` mode: the mask sampler does all.
    `callback` receives the sampler's step info plus `step` and `sampler` (`base`, `mask`, `region0`, `fused`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    check_common(latent, seed, steps, denoise)
    mask = check_region_mask(mask, latent)
    check_overlap(overlap_factor)
    if feather < 0:
        raise ValueError(f"feather must be >= 0, got {feather}")
    if mode == "regional":
        return regional_sample(
            seed, steps, denoise, latent, base_sampler, [Region(mask, mask_sampler, overlap_factor)],
            base_only_steps=base_only_steps, restore_latent=restore_latent, additional_mode=additional_mode,
            additional_sampler=additional_sampler, additional_sigma_ratio=additional_sigma_ratio,
            seed_2nd=seed_2nd, seed_2nd_mode=seed_2nd_mode, callback=callback,
        )
    grown = grow_mask(mask, latent.shape[-2], latent.shape[-1], overlap_factor)
    if mode == "fused":
        return fused_sample(seed, steps, denoise, latent, base_sampler, mask_sampler, feather_mask(grown, feather), callback)
    inverse = latent_noise_mask(inverse_mask(mask), latent)  # resized once, not at every per-step call
    return alternate_per_step(seed, steps, denoise, latent, base_sampler, mask_sampler, inverse, grown, callback)


def alternate_per_step(
    seed: Seed,
    steps: int,
    denoise: float,
    latent: Tensor,
    base_sampler: KSampler,
    mask_sampler: KSampler,
    inverse: Tensor,
    grown: Tensor,
    callback: Callback | None = None,
) -> Tensor:
    """SPEC §6: for each step i, base `i -> i+1` with `noise_mask = inverse` (noise added on the first step only,
    leftover noise kept), then mask `i -> i+1` with `noise_mask = grown` (leftover kept but on the last step)."""
    adv_steps, start = denoise_to_steps(steps, denoise)
    x = latent
    for i in range(start, adv_steps):
        last = i + 1 == adv_steps
        x = base_sampler.sample_advanced(i == start, seed, adv_steps, x, i, i + 1, True, inverse, tagged(callback, i, "base"))
        x = mask_sampler.sample_advanced(False, seed, adv_steps, x, i, i + 1, not last, grown, tagged(callback, i, "mask"))
    return x


class FusedDenoiser:
    """`D(x, s) = D_base(x, s) * (1 - w) + D_mask(x, s) * w`, both evaluated at the same `(x, s)`, in one batched
    forward when they share a UNet (`JointDenoiser`)."""

    def __init__(self, base, mask, weight: Tensor) -> None:
        self.joint = JointDenoiser([base, mask])
        self.weight = weight

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        base, inside = self.joint(x, sigma)
        w = self.weight.to(device=x.device, dtype=x.dtype)
        return base * (1 - w) + inside * w


def fused_sample(
    seed: Seed,
    steps: int,
    denoise: float,
    latent: Tensor,
    base_sampler: KSampler,
    mask_sampler: KSampler,
    weight: Tensor,
    callback: Callback | None = None,
) -> Tensor:
    """One trajectory with the base sampler's algorithm and schedule over the blended denoiser; multistep
    samplers keep their history across the whole run (which per-step calls lose)."""
    adv_steps, start = denoise_to_steps(steps, denoise)
    sigmas = base_sampler.slice_sigmas(adv_steps, start, adv_steps, False).to(latent.device)
    noise = NoiseStream(seed)(latent)
    x = base_sampler.model_sampling.noise_scaling(float(sigmas[0]), noise, latent)
    denoiser = FusedDenoiser(base_sampler.denoiser, mask_sampler.denoiser, weight)
    report = None if callback is None else (lambda info: callback({**info, "step": start + info["i"], "sampler": "fused"}))
    return sample(denoiser, x, sigmas, base_sampler.sampler, seed, report)
