"""DPM-Solver++(3M) SDE: third-order multistep exponential integrator with eta = 1 (Lu et al. 2022)."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list


def sample_dpmpp_3m_sde(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `h = log(s/s_next)`, `he = 2h`: `x <- e^{-he} x + (1 - e^{-he}) D_i + phi2 d1 - phi3 d2
    + s_next sqrt(1 - e^{-2h}) z`, d1 and d2 the divided differences of the last three D's,
    `phi2 = expm1(-he)/he + 1`, `phi3 = phi2/he - 1/2`."""
    noise = require_noise(noise, "dpmpp_3m_sde")
    s = sigma_list(sigmas)
    d_1 = d_2 = None
    h_1 = h_2 = None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            he = 2 * h
            x = math.exp(-he) * x - math.expm1(-he) * denoised
            phi_2 = math.expm1(-he) / he + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - d_1) / r0
                d1_1 = (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / he - 0.5) * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - d_1) / (h_1 / h)
            x = x + noise(x) * s[i + 1] * math.sqrt(-math.expm1(-2 * h))
            h_1, h_2 = h, h_1
        d_1, d_2 = denoised, d_1
        report(callback, i, x, s[i], denoised)
    return x
