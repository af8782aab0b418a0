"""DPM-Solver++(2S) single-step, ancestral (Lu et al. 2022, DPM-Solver++), eta = 1."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d


def sample_dpmpp_2s_ancestral(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `lambda = -log sigma`, `h = lambda(sigma_down) - lambda(s)`, midpoint `r = 1/2`:
    `x_2 = (s_mid/s) x - expm1(-h/2) D(x)`, `x <- (sigma_down/s) x - expm1(-h) D(x_2)`, then `+ sigma_up z`."""
    noise = require_noise(noise, "dpmpp_2s_ancestral")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        down, up = ancestral_step(s[i], s[i + 1])
        if down == 0:
            x = x + to_d(x, s[i], denoised) * (down - s[i])
        else:
            h = math.log(s[i]) - math.log(down)
            s_mid = s[i] * math.exp(-h / 2)
            x_2 = (s_mid / s[i]) * x - math.expm1(-h / 2) * denoised
            denoised_2 = denoise(denoiser, x_2, s_mid)
            x = (down / s[i]) * x - math.expm1(-h) * denoised_2
        if s[i + 1] > 0:
            x = x + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x
