"""Ancestral Euler with CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance"), eta = 1."""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import is_flow
from .common import Callback, Denoiser, NoiseFn, ancestral_step, report, require_noise, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_euler_ancestral_cfg_pp(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`x <- D_cfg + sigma_down * (x - D_uncond) / s + sigma_up * z`, with `sigma_down^2 + sigma_up^2 = s_next^2`
    (the ancestral split); the step to sigma 0 returns `D_cfg`. Needs `denoiser.with_uncond`. Under a flow model
    sampling, upstream's form with `a = 1 - sigma`: `x <- a_next D_cfg + a_next down' (x - a U) / s + a_next up' z`,
    `(down', up')` the ancestral split of `s/a -> s_next/a_next`."""
    require_uncond(denoiser, "euler_ancestral_cfg_pp")
    noise = require_noise(noise, "euler_ancestral_cfg_pp")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            if not is_flow(model_sampling):
                down, up = ancestral_step(s[i], s[i + 1])
                x = denoised + (x - uncond) * (down / s[i]) + noise(x) * up
            else:
                a, a_next = 1 - s[i], 1 - s[i + 1]
                # at sigma 1 (a = 0) upstream's split of inf -> s_next/a_next is all noise: down 0, up s_next/a_next
                down, up = ancestral_step(s[i] / a if a > 0 else math.inf, s[i + 1] / a_next)
                x = a_next * denoised + (x - a * uncond) * (a_next * down / s[i]) + noise(x) * (a_next * up)
        report(callback, i, x, s[i], denoised)
    return x
