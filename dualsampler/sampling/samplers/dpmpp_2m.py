"""DPM-Solver++(2M): the deterministic second-order multistep solver (Lu et al. 2022, Algorithm 2)."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list


def sample_dpmpp_2m(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- (s_next/s) x - expm1(-h) D_hat`, `h = log(s/s_next)`, where `D_hat = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}`
    with `r = h_prev/h` (first step and the step to sigma 0: `D_hat = D_i`)."""
    s = sigma_list(sigmas)
    old_denoised = None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            if old_denoised is None:
                denoised_d = denoised
            else:
                r = (math.log(s[i - 1]) - math.log(s[i])) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (s[i + 1] / s[i]) * x - math.expm1(-h) * denoised_d
        old_denoised = denoised
        report(callback, i, x, s[i], denoised)
    return x
