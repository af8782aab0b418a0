"""DPM-Solver-2 in the Karras formulation: a midpoint step at the log-sigma midpoint (Karras et al. 2022)."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d


def sample_dpm_2(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x_mid = x + d*(s_mid - s)`, `x <- x + d(x_mid)*(s_next - s)` with `s_mid = sqrt(s*s_next)`."""
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        if s[i + 1] == 0:
            x = x + d * (s[i + 1] - s[i])
        else:
            s_mid = math.exp((math.log(s[i]) + math.log(s[i + 1])) / 2)
            x_mid = x + d * (s_mid - s[i])
            x = x + to_d(x_mid, s_mid, denoise(denoiser, x_mid, s_mid)) * (s[i + 1] - s[i])
        report(callback, i, x, s[i], denoised)
    return x
