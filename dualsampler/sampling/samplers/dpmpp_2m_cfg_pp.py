"""DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) with CFG++ (Chung et al. 2024): the multistep update re-noises
the guided x0 with the unconditional noise estimate and corrects with the guided-minus-previous-unconditional
difference."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, report, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_dpmpp_2m_cfg_pp(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `h = log(s / s_next)`, `r = h_prev / h`:
    `x <- D_cfg + exp(-h) (x - U_i) - expm1(-h) / (2r) (D_cfg - U_{i-1})` (`U` the unconditional x0; the first step
    drops the last term, the step to sigma 0 returns `D_cfg`). With `U = D_cfg` this is DPM-Solver++(2M).
    Needs `denoiser.with_uncond`."""
    require_uncond(denoiser, "dpmpp_2m_cfg_pp")
    s = sigma_list(sigmas)
    old_uncond: Tensor | None = None
    for i in range(len(s) - 1):
        denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            x = denoised + math.exp(-h) * (x - uncond)
            if old_uncond is not None:
                r = (math.log(s[i - 1]) - math.log(s[i])) / h
                x = x - (math.expm1(-h) / (2 * r)) * (denoised - old_uncond)
        old_uncond = uncond
        report(callback, i, x, s[i], denoised)
    return x
