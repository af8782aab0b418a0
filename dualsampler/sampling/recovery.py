"""Recovery ("additional") sampling for SDE and UniPC samplers run one step per call (upstream's regional route).

Those samplers lose their Brownian path or multistep history when every step is a fresh call, which leaves
regions under-denoised. A recovery step runs the region's sampler with its sigmas scaled by `1 - ratio`
(`ratio between`) or `1` (`ratio additional`), restores the latent outside the noise mask, then runs the
recovery sampler over the same step with sigmas scaled by `ratio`. `ratio additional` thus denoises more than
the schedule asks (by `ratio`), `ratio between` splits the step's denoising between the two samplers.
"""

from __future__ import annotations

from torch import Tensor

from .ksampler import KSampler
from .noise import Seed
from .noise_mask import latent_noise_mask
from .samplers import SAMPLERS, Callback

RECOVERY_MODES = ("DISABLE", "ratio additional", "ratio between")
RECOVERY_SAMPLERS = ("AUTO",) + SAMPLERS
NEEDS_RECOVERY = frozenset({"uni_pc", "uni_pc_bh2", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"})
# Upstream's AUTO picks dpm_fast for uni_pc/dpmpp_sde, which this toolkit does not have; dpmpp_2m is used for all.
AUTO_RECOVERY_SAMPLER = "dpmpp_2m"


def check_recovery(mode: str, sampler: str, ratio: float) -> None:
    if mode not in RECOVERY_MODES:
        raise ValueError(f"additional_mode must be one of {', '.join(RECOVERY_MODES)}; got {mode!r}")
    if sampler not in RECOVERY_SAMPLERS:
        raise ValueError(f"additional_sampler must be one of {', '.join(RECOVERY_SAMPLERS)}; got {sampler!r}")
    if not 0 <= ratio <= 1:
        raise ValueError(f"additional_sigma_ratio must be in [0, 1], got {ratio}")


def sample_step_with_recovery(
    ksampler: KSampler,
    add_noise: bool,
    seed: Seed,
    steps: int,
    latent: Tensor,
    start_at_step: int,
    end_at_step: int,
    return_with_leftover_noise: bool,
    noise_mask: Tensor,
    mode: str = "DISABLE",
    recovery_sampler: str = "AUTO",
    ratio: float = 0.3,
    callback: Callback | None = None,
) -> Tensor:
    """`ksampler.sample_advanced(...)`, followed by the recovery pass for samplers in `NEEDS_RECOVERY`."""
    args = (add_noise, seed, steps)
    slice_args = (start_at_step, end_at_step, return_with_leftover_noise, noise_mask, callback)
    if mode == "DISABLE" or ksampler.sampler not in NEEDS_RECOVERY:
        return ksampler.sample_advanced(*args, latent, *slice_args)
    first_scale = 1.0 - ratio if mode == "ratio between" else 1.0
    out = ksampler.sample_advanced(*args, latent, *slice_args, sigma_scale=first_scale) if first_scale > 0 else latent
    if ratio <= 0:
        return out
    m = latent_noise_mask(noise_mask, latent)
    restored = latent * (1 - m) + out * m
    name = AUTO_RECOVERY_SAMPLER if recovery_sampler == "AUTO" else recovery_sampler
    recovery = KSampler(ksampler.denoiser, name, ksampler.scheduler, ksampler.model_sampling)
    return recovery.sample_advanced(*args, restored, *slice_args, sigma_scale=ratio)
