"""DPM-Solver++(2S) ancestral (Lu et al. 2022) with CFG++ (Chung et al. 2024), eta = 1: both stages integrate the
unconditional prediction, and the guidance `D_cfg - D_uncond` of the step's first call is added at its end."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, report, require_noise, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_dpmpp_2s_ancestral_cfg_pp(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `h = log(s / sigma_down)`, `s_mid = s exp(-h/2)`, `U` the unconditional x0:
    `x_2 = (s_mid/s) x - expm1(-h/2) U(x)`, `x <- (sigma_down/s) x - expm1(-h) U(x_2) + sigma_up z
    + (D_cfg(x) - U(x))`; the step to sigma 0 returns `D_cfg(x)`. Needs `denoiser.with_uncond`."""
    require_uncond(denoiser, "dpmpp_2s_ancestral_cfg_pp")
    noise = require_noise(noise, "dpmpp_2s_ancestral_cfg_pp")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        down, up = ancestral_step(s[i], s[i + 1])
        if down == 0:
            x = denoised
        else:
            h = math.log(s[i]) - math.log(down)
            s_mid = s[i] * math.exp(-h / 2)
            x_2 = (s_mid / s[i]) * x - math.expm1(-h / 2) * uncond
            _, uncond_2 = denoise_with_uncond(denoiser, x_2, s_mid)
            x = (down / s[i]) * x - math.expm1(-h) * uncond_2
            if s[i + 1] > 0:
                x = x + noise(x) * up
            x = x + (denoised - uncond)
        report(callback, i, x, s[i], denoised)
    return x
