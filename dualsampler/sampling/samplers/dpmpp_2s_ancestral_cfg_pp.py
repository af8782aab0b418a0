"""DPM-Solver++(2S) ancestral (Lu et al. 2022) with CFG++ (Chung et al. 2024), eta = 1, as upstream runs it at
the pinned ComfyUI commit: both stages start from x moved by a guidance difference, the first by
`D_cfg(x) - D_uncond(x)`, the second by `D_cfg(x) - D_uncond(x_2)` (upstream reads the unconditional prediction
after the midpoint call has replaced it). So even without guidance (`D_uncond = D_cfg`) the second stage is shifted
by `D(x) - D(x_2)` and the sampler does not reduce to DPM-Solver++(2S) ancestral."""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, report, require_noise, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_dpmpp_2s_ancestral_cfg_pp(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `h = log(s / sigma_down)`, `s_mid = s exp(-h/2)`:
    `x_2 = (s_mid/s) (x + D_cfg(x) - D_uncond(x)) - expm1(-h/2) D_cfg(x)`,
    `x <- (sigma_down/s) (x + D_cfg(x) - D_uncond(x_2)) - expm1(-h) D_cfg(x_2) + sigma_up z`;
    the step to sigma 0 returns `D_cfg(x)`. Needs `denoiser.with_uncond`."""
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
            x_2 = (s_mid / s[i]) * (x + (denoised - uncond)) - math.expm1(-h / 2) * denoised
            denoised_2, uncond_2 = denoise_with_uncond(denoiser, x_2, s_mid)
            x = (down / s[i]) * (x + (denoised - uncond_2)) - math.expm1(-h) * denoised_2
        if s[i + 1] > 0:
            x = x + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x
