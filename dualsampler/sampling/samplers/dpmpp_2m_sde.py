"""DPM-Solver++(2M) SDE, midpoint variant (Lu et al. 2022), eta = 1."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list


def sample_dpmpp_2m_sde(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `h = log(s/s_next)`: `x <- (s_next/s) e^{-h} x + (1 - e^{-2h}) D_i
    + (1 - e^{-2h}) / (2r) (D_i - D_{i-1}) + s_next sqrt(1 - e^{-2h}) z`, `r = h_prev/h`."""
    noise = require_noise(noise, "dpmpp_2m_sde")
    s = sigma_list(sigmas)
    old_denoised, h_last = None, None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            coef = -math.expm1(-2 * h)
            x = (s[i + 1] / s[i]) * math.exp(-h) * x + coef * denoised
            if old_denoised is not None:
                r = h_last / h
                x = x + 0.5 * coef / r * (denoised - old_denoised)
            x = x + noise(x) * s[i + 1] * math.sqrt(coef)
            h_last = h
        old_denoised = denoised
        report(callback, i, x, s[i], denoised)
    return x
