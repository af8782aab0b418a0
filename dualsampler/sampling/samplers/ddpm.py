"""DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", Algorithm 2) over an
arbitrary sigma list, taken in the variance-preserving frame `x_vp = x / sqrt(1 + sigma^2)`."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list


def sample_ddpm(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `a = 1/(1+s^2)`, `a' = 1/(1+s_next^2)`, `alpha = a/a'` and `eps = (x - D(x, s)) / s`:
    `x_vp' = (x_vp - (1 - alpha) eps / sqrt(1 - a)) / sqrt(alpha) + sqrt((1 - alpha)(1 - a')/(1 - a)) z`
    (no noise on the step to sigma 0, which lands on `D`), then `x = x_vp' sqrt(1 + s_next^2)`."""
    noise = require_noise(noise, "ddpm")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        acp, acp_next = 1 / (1 + s[i] ** 2), 1 / (1 + s[i + 1] ** 2)
        alpha = acp / acp_next
        eps = (x - denoised) / s[i]
        x_vp = (x * math.sqrt(acp) - eps * ((1 - alpha) / math.sqrt(1 - acp))) / math.sqrt(alpha)
        if s[i + 1] > 0:
            x_vp = x_vp + noise(x) * math.sqrt((1 - alpha) * (1 - acp_next) / (1 - acp))
            x = x_vp * math.sqrt(1 + s[i + 1] ** 2)
        else:
            x = x_vp
        report(callback, i, x, s[i], denoised)
    return x
