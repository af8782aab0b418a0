"""Multistep latent consistency sampling (Luo et al. 2023, "Latent Consistency Models", Algorithm 1): jump to the
model's x0 prediction, then re-noise it to the next sigma with fresh noise."""

from __future__ import annotations

from torch import Tensor

from ..flow_sampling import is_flow
from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list


def sample_lcm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`x <- D(x, s) + s_next * z` (a flow model's noising `s_next z + (1 - s_next) D(x, s)` under a flow model
    sampling); the step to sigma 0 returns `D(x, s)`. One model call per step."""
    noise = require_noise(noise, "lcm")
    s = sigma_list(sigmas)
    flow = is_flow(model_sampling)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] > 0 and flow:
            x = model_sampling.noise_scaling(s[i + 1], noise(denoised), denoised)  # type: ignore[attr-defined]
        else:
            x = denoised + noise(denoised) * s[i + 1] if s[i + 1] > 0 else denoised
        report(callback, i, x, s[i], denoised)
    return x
